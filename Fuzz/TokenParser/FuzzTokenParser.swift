// Placeholder: filled in by the fuzzing work.
@main struct Placeholder { static func main() {} }
