import HTTPTypes
import Testing

@testable import GatehouseProxy

@Suite struct CORSPolicyTests {
    func names(_ fields: [HTTPField]) -> [String: String] {
        Dictionary(fields.map { ($0.name.canonicalName, $0.value) }, uniquingKeysWith: { $1 })
    }

    let listed = CORSPolicy(allowedOrigins: .list(["https://app.example.com", "http://localhost:3000"]), allowCredentials: true)

    @Test func allowedOriginIsReflectedWithCredentialsAndExposedHeaders() {
        let fields = names(listed.responseFields(origin: "https://app.example.com"))
        #expect(fields["access-control-allow-origin"] == "https://app.example.com")
        #expect(fields["access-control-allow-credentials"] == "true")
        #expect(fields["vary"] == "Origin")
        #expect(fields["access-control-expose-headers"] == "WWW-Authenticate, X-Request-Id, Retry-After")
    }

    @Test(arguments: [
        "https://evil.example", "https://app.example.com.evil.example", "https://APP.example.com", "null",
        "https://app.example.com, https://evil.example", "http://app.example.com", "https://app.example.com:443",
    ])
    func otherOriginsGetNoPermissionOnlyVary(_ origin: String) {
        #expect(names(listed.responseFields(origin: origin)) == ["vary": "Origin"])
    }

    @Test func noOriginStillVaries() {
        #expect(names(listed.responseFields(origin: nil)) == ["vary": "Origin"])
    }

    @Test func wildcardWithoutCredentials() {
        let any = CORSPolicy(allowedOrigins: .any)
        let fields = names(any.responseFields(origin: "https://anything.example"))
        #expect(fields["access-control-allow-origin"] == "*")
        #expect(fields["access-control-allow-credentials"] == nil)
        #expect(fields["vary"] == nil)
        #expect(any.responseFields(origin: nil).isEmpty)
    }

    @Test func unsetAddsNothing() {
        #expect(CORSPolicy().responseFields(origin: "https://app.example.com").isEmpty)
    }

    @Test func preflightIsOptionsWithOriginAndRequestMethod() {
        var fields = HTTPFields()
        fields[.origin] = "https://app.example.com"
        #expect(!CORSPolicy.isPreflight(method: "OPTIONS", headers: fields))
        fields[.accessControlRequestMethod] = "POST"
        #expect(CORSPolicy.isPreflight(method: "OPTIONS", headers: fields))
        #expect(!CORSPolicy.isPreflight(method: "GET", headers: fields))
        fields[.origin] = nil
        #expect(!CORSPolicy.isPreflight(method: "OPTIONS", headers: fields))
    }

    @Test func originParsing() throws {
        #expect(try CORSPolicy.parseOrigins("") == .none)
        #expect(try CORSPolicy.parseOrigins("*") == .any)
        #expect(try CORSPolicy.parseOrigins(" HTTPS://App.Example.com , http://localhost:3000")
            == .list(["https://app.example.com", "http://localhost:3000"]))
        for bad in ["https://app.example.com/", "app.example.com", "null", "https://a.example/path", "*,https://a.example"] {
            #expect(throws: ConfigurationValueError.self, "\(bad)") { try CORSPolicy.parseOrigins(bad) }
        }
    }
}
