import GatehouseUpstream
import Glibc
import HTTPTypes
import Testing

@testable import GatehouseProxy

/// The event-loop core's pure helpers: the worker count from a cgroup quota, and what goes on
/// the wire for a response head and its chunks.
@Suite struct EventCoreTests {
    @Test(arguments: [
        ("max 100000\n", nil),
        ("100000 100000\n", 1),
        ("150000 100000\n", 2),  // 1.5 CPUs: rounded up
        ("50000 100000", 1),
        ("400000 100000", 4),
        ("garbage", nil),
        ("0 100000", nil),
    ] as [(String, Int?)])
    func cgroupQuota(_ line: String, _ cpus: Int?) {
        #expect(CPUBudget.quotaCPUs(cpuMax: line) == cpus)
    }

    /// Against the kernel's own count, not our code: the default never exceeds the CPUs online.
    @Test func theDefaultWorkerCountIsAtLeastOneAndAtMostTheCPUsOnline() {
        let workers = CPUBudget.available()
        #expect(workers >= 1)
        #expect(workers <= Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    @Test func aResponseHeadOnTheWire() {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields.append(HTTPField(name: HTTPField.Name("Set-Cookie")!, value: "a=1"))
        fields.append(HTTPField(name: HTTPField.Name("Set-Cookie")!, value: "b=2"))
        let bytes = ResponseHeadBytes.serialize(HTTPResponse(status: .init(code: 201), headerFields: fields))
        #expect(String(decoding: bytes, as: UTF8.self)
            == "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")
        let unknown = ResponseHeadBytes.serialize(HTTPResponse(status: .init(code: 299)))
        #expect(String(decoding: unknown, as: UTF8.self) == "HTTP/1.1 299 \r\n\r\n")
    }

    @Test(arguments: [(0, "0"), (1, "1"), (15, "f"), (16, "10"), (65536, "10000"), (255, "ff")])
    func chunkSizes(_ size: Int, _ hex: String) {
        var bytes: [UInt8] = []
        ResponseHeadBytes.appendChunkSize(size, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == hex + "\r\n")
    }

    func upstreamHead(_ fields: [(String, String)], status: Int = 200) -> UpstreamResponseHead {
        UpstreamResponseHead(status: status, reason: "", headers: fields.map { .init(name: $0.0, value: $0.1) })
    }

    @Test func fastApisHeadIsForwardedWithoutHopByHopFields() {
        let head = upstreamHead([
            ("Content-Type", "application/json"), ("Connection", "keep-alive, X-Secret-Hop"), ("Keep-Alive", "timeout=5"),
            ("X-Secret-Hop", "1"), ("Transfer-Encoding", "chunked"), ("X-Request-Id", "forged"), ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"), ("Bad Name", "x"), ("X-Ctl", "a\u{01}b"),
        ])
        let (bytes, framing) = ResponseHeadBytes.forwarded(head, requestID: "rid", bodyless: false, http10: false, close: false)
        #expect(framing == .chunked)
        #expect(String(decoding: bytes, as: UTF8.self) == """
            HTTP/1.1 200 OK\r
            Content-Type: application/json\r
            Set-Cookie: a=1\r
            Set-Cookie: b=2\r
            X-Ctl: a b\r
            X-Request-Id: rid\r
            Transfer-Encoding: chunked\r
            \r

            """)
    }

    @Test func aDeclaredLengthIsKeptAndHTTP10GetsItsConnectionField() {
        let withLength = upstreamHead([("Content-Length", "2")])
        let keptAlive = ResponseHeadBytes.forwarded(withLength, requestID: "r", bodyless: false, http10: true, close: false)
        #expect(keptAlive.framing == .asSent)
        #expect(String(decoding: keptAlive.bytes, as: UTF8.self).hasSuffix("Content-Length: 2\r\nX-Request-Id: r\r\nConnection: keep-alive\r\n\r\n"))
        let unknownLength = ResponseHeadBytes.forwarded(upstreamHead([]), requestID: "r", bodyless: false, http10: true, close: false)
        #expect(unknownLength.framing == .untilClose)
        #expect(String(decoding: unknownLength.bytes, as: UTF8.self).hasSuffix("X-Request-Id: r\r\nConnection: close\r\n\r\n"))
        let noContent = ResponseHeadBytes.forwarded(upstreamHead([], status: 204), requestID: "r", bodyless: true, http10: false, close: true)
        #expect(noContent.framing == .asSent)
        #expect(String(decoding: noContent.bytes, as: UTF8.self) == "HTTP/1.1 204 No Content\r\nX-Request-Id: r\r\nConnection: close\r\n\r\n")
    }

    @Test func theConnectionBudgetAdmitsUpToItsLimitAndFreesOnRelease() {
        let budget = ConnectionBudget(limit: 2)
        #expect(budget.acquire())
        #expect(budget.acquire())
        #expect(!budget.acquire())  // the third waits
        budget.release()
        #expect(budget.acquire())
        #expect(!budget.acquire())
    }

    @Test func adminAnswersByMethodAndPath() {
        let readiness = Readiness(listenerCount: 1, jwks: nil)
        let admin = AdminResponder(readiness: readiness, metrics: ProxyMetrics(version: "test"), jwks: nil)
        #expect(admin.answer(method: "GET", path: "/healthz").status == 200)
        #expect(admin.answer(method: "HEAD", path: "/healthz").status == 200)
        #expect(admin.answer(method: "GET", path: "/readyz").status == 503)  // its listener has not started
        readiness.listenerStarted()
        #expect(admin.answer(method: "GET", path: "/readyz").status == 200)
        readiness.startDraining()
        #expect(admin.answer(method: "GET", path: "/readyz").status == 503)
        let metrics = admin.answer(method: "GET", path: "/metrics")
        #expect(metrics.status == 200 && metrics.contentType.hasPrefix("text/plain; version=0.0.4"))
        #expect(String(decoding: metrics.body, as: UTF8.self).contains("gatehouse_"))
        #expect(admin.answer(method: "POST", path: "/healthz").status == 404)
        #expect(admin.answer(method: "GET", path: "/nope").status == 404)
    }

    @Test func requestIDsAre32HexDigitsAndDoNotRepeatAcrossRefills() {
        var source = RequestIDSource()
        var seen = Set<String>()
        for _ in 0..<1000 {  // about four refills of the pool
            let id = source.next()
            #expect(id.utf8.count == 32)
            #expect(id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            seen.insert(id)
        }
        #expect(seen.count == 1000)
        #expect(RequestID.accept(source.next()) != nil)  // what gatehouse makes, it would accept from a client
    }
}
