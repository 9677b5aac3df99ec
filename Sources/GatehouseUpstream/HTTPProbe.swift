import CCurl

/// A blocking one-shot GET, for `gatehouse healthcheck` (container images without curl).
///
/// It uses its own easy handle with `curl_easy_perform` on the calling thread, outside the
/// multi handle, so it does not break `CurlLoop`'s thread invariant (that invariant concerns
/// the multi handle and the handles added to it).
public enum HTTPProbe {
    /// Returns the response status, or nil if no response arrived within `timeoutMilliseconds`.
    public static func get(url: String, timeoutMilliseconds: Int) -> Int? {
        CurlGlobal.initialise()
        guard let easy = curl_easy_init() else { return nil }
        defer { curl_easy_cleanup(easy) }
        _ = gh_easy_setopt_string(easy, CURLOPT_URL, url)
        _ = gh_easy_setopt_string(easy, CURLOPT_PROXY, "")
        _ = gh_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = gh_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        _ = gh_easy_setopt_datacb(easy, CURLOPT_WRITEFUNCTION, discardBody)
        guard curl_easy_perform(easy) == CURLE_OK else { return nil }
        var status = 0
        _ = gh_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return status
    }
}

private let discardBody: gh_data_callback = { _, size, count, _ in size * count }
