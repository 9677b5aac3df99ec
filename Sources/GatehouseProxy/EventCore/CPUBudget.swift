import EventLoop

#if canImport(Glibc)
import Glibc
#endif

/// How many CPUs this process may use: the default worker count.
///
/// The affinity mask (`sched_getaffinity`: what `taskset` or a cpuset allows), capped by the
/// cgroup v2 CPU quota (`cpu.max`, what a Kubernetes CPU limit sets) rounded up, and at least
/// one. Counting only the machine's cores, as Envoy's default does, gives a sidecar limited to
/// half a CPU as many busy threads as the node has cores, which the quota then throttles.
enum CPUBudget {
    static func available() -> Int {
        var cpus = LinuxCalls.cpusInAffinityMask() ?? 1
        if let text = readSmallFile("/sys/fs/cgroup/cpu.max"), let quota = quotaCPUs(cpuMax: text) {
            cpus = min(cpus, quota)
        }
        return max(1, cpus)
    }

    /// The CPUs a cgroup v2 `cpu.max` line allows, rounded up ("150000 100000" is 2);
    /// nil for "max" (no quota) or an unreadable line.
    static func quotaCPUs(cpuMax: String) -> Int? {
        let parts = cpuMax.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, parts[0] != "max", let quota = Int(parts[0]), let period = Int(parts[1]),
            quota > 0, period > 0
        else { return nil }
        return (quota + period - 1) / period
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
