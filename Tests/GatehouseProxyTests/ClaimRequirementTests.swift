import JOSE
import Testing

@testable import GatehouseProxy

@Suite struct ClaimRequirementTests {
    static let claims: JWTClaims = [
        "sub": .string("u1"),
        "role": .string("admin"),
        "roles": .array([.string("user"), .string("admin"), .int(7)]),
        "level": .int(2),
        "big": .int(9_007_199_254_740_993),
        "ratio": .double(2.5),
        "emailVerified": .bool(true),
        "banned": .bool(false),
        "scope": .string("openid reports:read profile"),
        "scp": .array([.string("reports:read")]),
        "org": .object(["role": .string("owner")]),
        "nothing": .null,
    ]

    @Test(arguments: [
        // strings: exact, case-sensitive
        ("role=admin", true), ("role=Admin", false), ("role=adm", false),
        // integers compare exactly, beyond 2^53 too; 2.0 and 2e0 still mean 2
        ("big=9007199254740993", true), ("big=9007199254740992", false), ("level=2.0", true), ("level=2e0", true),
        ("level=2.5", false),
        // arrays: any element
        ("roles=admin", true), ("roles=user", true), ("roles=guest", false), ("roles=7", true),
        // numbers, numerically
        ("level=2", true), ("level=2.0", true), ("level=3", false), ("level=0x2", false), ("ratio=2.5", true),
        ("ratio=nan", false), ("role=2", false),
        // booleans
        ("emailVerified=true", true), ("emailVerified=false", false), ("emailVerified=1", false), ("banned=false", true),
        // scope~: space-delimited words, or array elements
        ("scope~reports:read", true), ("scope~openid", true), ("scope~reports", false), ("scope=openid", false),
        ("scp~reports:read", true), ("role~admin", true), ("level~2", false),
        // nested, missing, null, objects
        ("org.role=owner", true), ("org=owner", false), ("org.role.x=owner", false), ("missing=x", false),
        ("nothing=null", false),
    ])
    func matching(_ requirement: String, _ satisfied: Bool) throws {
        let parsed = try ClaimRequirement.parse(Substring(requirement))
        #expect(parsed.isSatisfied(by: Self.claims) == satisfied, "\(requirement)")
        #expect(parsed.description == requirement)
    }

    @Test func valueMayContainOperators() throws {
        let parsed = try ClaimRequirement.parse("scope~a=b")
        #expect(parsed.claim == ["scope"] && parsed.kind == .containsWord && parsed.value == "a=b")
    }

    /// The operator and the dots are found among Unicode scalars (found by Fuzz/RulesParser): a
    /// prepended mark (U+0600) before `.` or `=`, or a combining one after `=`, forms one
    /// `Character` with it and hid the dot path or the operator.
    @Test func operatorAndDotsAreFoundAmongUnicodeScalars() throws {
        let nested = try ClaimRequirement.parse("org\u{600}.role=owner")
        #expect(nested.claim == ["org\u{600}", "role"] && nested.value == "owner")
        let beforeOperator = try ClaimRequirement.parse("role\u{600}=admin")
        #expect(beforeOperator.claim == ["role\u{600}"] && beforeOperator.kind == .equals && beforeOperator.value == "admin")
        let afterOperator = try ClaimRequirement.parse("role~\u{301}x")
        #expect(afterOperator.claim == ["role"] && afterOperator.kind == .containsWord && afterOperator.value == "\u{301}x")
    }
}
