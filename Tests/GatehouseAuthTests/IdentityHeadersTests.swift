import JOSE
import Testing

@testable import GatehouseAuth

@Suite struct IdentityHeadersTests {
    @Test(arguments: [
        (JSONValue.string("abc"), "abc" as String?), (.int(42), "42"), (.double(1.5), "1.5"), (.double(7), "7"),
        (.bool(true), "true"), (.null, nil), (.array([.string("a")]), nil), (.object([:]), nil),
    ])
    func onlyScalarsBecomeHeaders(_ value: JSONValue, _ expected: String?) {
        #expect(Authenticator.headerText(value) == expected)
    }

    @Test func rejectionVocabularyMatchesTheDocumentedDescriptions() {
        let all = VerificationFailure.Reason.allCases.map { Authenticator.Rejection($0).rawValue }
        #expect(Set(all) == [
            "expired", "not yet valid", "bad signature", "unknown key", "issuer mismatch", "audience mismatch",
            "malformed", "algorithm not allowed",
        ])
    }
}
