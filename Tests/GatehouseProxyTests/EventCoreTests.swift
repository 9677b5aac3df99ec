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

    @Test func theDefaultWorkerCountIsAtLeastOneAndAtMostTheMachine() {
        let workers = CPUBudget.available()
        #expect(workers >= 1)
        #expect(workers <= 4096)
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
}
