import CCurl

/// The libcurl options of one proxied exchange, shared by both clients: `EasyTransfer` (the
/// curl-thread client) and `UpstreamTransfer` (driven by a worker's event loop). One place
/// decides what curl sends, so the two can never forward a request differently.
enum CurlRequestSetup {
    /// The three data callbacks; each receives `userdata` (the transfer object).
    struct Callbacks {
        var header: gh_data_callback
        var write: gh_data_callback
        var read: gh_data_callback
    }

    struct Outcome {
        /// Owned by the caller: free it with `curl_slist_free_all` after the transfer.
        var headerList: UnsafeMutablePointer<curl_slist>?
        /// The first option that failed, or a refused request line or header; nil when all is set.
        var failure: String?
        /// The request body's declared length (nil when chunked or absent).
        var declaredBodyLength: Int64?
        /// No request body at all: the request is sent as soon as curl connects.
        var bodyless: Bool
    }

    static func apply(
        _ request: UpstreamRequest, to easy: UnsafeMutableRawPointer, configuration: UpstreamClientConfiguration,
        userdata: UnsafeMutableRawPointer, callbacks: Callbacks
    ) -> Outcome {
        var outcome = Outcome(headerList: nil, failure: nil, declaredBodyLength: nil, bodyless: false)
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK, outcome.failure == nil {
                outcome.failure = "\(what): \(String(cString: curl_easy_strerror(code)))"
            }
        }
        if request.origin.hasPrefix("unix:") {
            // `unix:/path/to.sock`: the same HTTP/1.1 exchange over a Unix socket (uvicorn
            // --uds); the URL only names the Host curl would send, and the client's Host is
            // forwarded anyway.
            check(gh_easy_setopt_string(easy, CURLOPT_UNIX_SOCKET_PATH, String(request.origin.dropFirst(5))), "unix socket")
            check(gh_easy_setopt_string(easy, CURLOPT_URL, "http://localhost/"), "upstream URL")
        } else {
            check(gh_easy_setopt_string(easy, CURLOPT_URL, request.origin + "/"), "upstream URL")
        }
        // The client's request target, byte for byte: no dot-segment removal, no re-encoding.
        check(gh_easy_setopt_string(easy, CURLOPT_REQUEST_TARGET, request.target), "request target")
        check(gh_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1), "path as is")
        check(gh_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
        // Never route proxied traffic through an http_proxy from the environment.
        check(gh_easy_setopt_string(easy, CURLOPT_PROXY, ""), "proxy")
        check(gh_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "nosignal")
        check(gh_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1), "http version")
        // Bytes pass through unchanged: no content decoding (transfer decoding stays on, since
        // chunked framing is hop-by-hop).
        check(gh_easy_setopt_long(easy, CURLOPT_HTTP_CONTENT_DECODING, 0), "content decoding")
        check(gh_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeoutMilliseconds), "connect timeout")
        check(gh_easy_setopt_long(easy, CURLOPT_MAXAGE_CONN, configuration.maxConnectionAgeSeconds), "max connection age")
        if let total = request.totalTimeoutMilliseconds {
            check(gh_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, total), "total timeout")
        }
        check(gh_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, 64 * 1024), "buffer size")
        check(gh_easy_setopt_long(easy, CURLOPT_UPLOAD_BUFFERSIZE, 64 * 1024), "upload buffer size")
        check(gh_easy_setopt_ptr(easy, CURLOPT_PRIVATE, userdata), "private")
        check(gh_easy_setopt_datacb(easy, CURLOPT_HEADERFUNCTION, callbacks.header), "header callback")
        check(gh_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, userdata), "header data")
        check(gh_easy_setopt_datacb(easy, CURLOPT_WRITEFUNCTION, callbacks.write), "write callback")
        check(gh_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, userdata), "write data")

        // CR, LF or NUL in the request line or a header would let the text after it pass as
        // another header or request (curl copies the bytes as they are): refused here, whatever
        // the caller checked.
        if hasLineBreakOrNUL(request.target) || hasLineBreakOrNUL(request.method)
            || request.headers.contains(where: { hasLineBreakOrNUL($0.name) || hasLineBreakOrNUL($0.value) })
        {
            outcome.failure = "request line or header with CR, LF or NUL"
            return outcome
        }
        var sawAccept = false
        var sawContentType = false
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers {
            if name.utf8.count == 6, name.lowercased() == "accept" { sawAccept = true }
            if name.utf8.count == 12, name.lowercased() == "content-type" { sawContentType = true }
            list = append(name: name, value: value, to: list)
        }
        // Remove what curl would add on its own.
        list = curl_slist_append(list, "Expect:")
        if !sawAccept { list = curl_slist_append(list, "Accept:") }

        func upload(length: Int64) {
            // POST + CUSTOMREQUEST sends any method with a streamed body; a length of -1 makes
            // curl use chunked transfer coding.
            check(gh_easy_setopt_long(easy, CURLOPT_POST, 1), "post")
            check(gh_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method), "method")
            check(gh_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length)), "body size")
            check(gh_easy_setopt_datacb(easy, CURLOPT_READFUNCTION, callbacks.read), "read callback")
            check(gh_easy_setopt_ptr(easy, CURLOPT_READDATA, userdata), "read data")
            if !sawContentType { list = curl_slist_append(list, "Content-Type:") }
        }
        switch (request.method, request.body) {
        case ("HEAD", _):
            check(gh_easy_setopt_long(easy, CURLOPT_NOBODY, 1), "HEAD")
            outcome.bodyless = true
        case (_, .none):
            if request.method != "GET" {
                check(gh_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method), "method")
            }
            outcome.bodyless = true
        case (_, .length(let length)):
            outcome.declaredBodyLength = length
            upload(length: length)
        case (_, .streamed):
            upload(length: -1)
        }
        check(gh_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list), "headers")
        outcome.headerList = list
        return outcome
    }

    /// Runs over every header byte of every request, so it is written to vectorise:
    /// contiguous bytes (`withUTF8`; a native string is not copied) and no early exit.
    /// 0.35-0.5 µs for a Better Auth request's ~1.6 KiB of headers, against 4.5-5 µs for
    /// `utf8.contains(where:)` (swiftc -O microbenchmark).
    static func hasLineBreakOrNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var found: UInt8 = 0
            for byte in bytes {
                found |= (byte == 0x0D ? 1 : 0) | (byte == 0x0A ? 1 : 0) | (byte == 0 ? 1 : 0)
            }
            return found != 0
        }
    }

    /// Appends `Name: value` to a curl header list. The line is assembled once in a temporary
    /// buffer (curl copies it), instead of through an interpolated `String` per header.
    /// curl drops `Name:` with an empty value; `Name;` sends it empty.
    static func append(name: String, value: String, to list: UnsafeMutablePointer<curl_slist>?) -> UnsafeMutablePointer<curl_slist>? {
        var name = name, value = value
        return name.withUTF8 { n in
            value.withUTF8 { v in
                let length = n.count + (v.isEmpty ? 1 : 2 + v.count)
                return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { line in
                    let bytes = UnsafeMutableRawBufferPointer(line)
                    bytes.copyMemory(from: UnsafeRawBufferPointer(n))
                    if v.isEmpty {
                        bytes[n.count] = UInt8(ascii: ";")
                    } else {
                        bytes[n.count] = UInt8(ascii: ":")
                        bytes[n.count + 1] = UInt8(ascii: " ")
                        UnsafeMutableRawBufferPointer(rebasing: bytes[(n.count + 2)...]).copyMemory(from: UnsafeRawBufferPointer(v))
                    }
                    bytes[length] = 0
                    return curl_slist_append(list, line.baseAddress)
                }
            }
        }
    }
}
