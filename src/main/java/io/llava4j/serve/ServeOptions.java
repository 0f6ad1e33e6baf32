package io.llava4j.serve;

import java.util.List;

/**
 * Who may use a server and under which name.
 *
 * @param servedModelName the model id clients send and {@code /v1/models} lists (null: the model folder's name)
 * @param apiKey          the key every {@code /v1/} and {@code /metrics} request must send as
 *                        {@code Authorization: Bearer KEY} (null: none asked)
 * @param allowedHosts    {@code Host} header names accepted besides the bind address (and, bound to loopback,
 *                        {@code localhost} and the loopback addresses); {@code "*"} accepts any. Other names get 421,
 *                        so a page on another site cannot reach the server by DNS rebinding
 */
public record ServeOptions(String servedModelName, String apiKey, List<String> allowedHosts) {
    public static final ServeOptions DEFAULT = new ServeOptions(null, null, List.of());

    public ServeOptions {
        allowedHosts = List.copyOf(allowedHosts);
        if (apiKey != null && apiKey.isBlank()) throw new IllegalArgumentException("the API key is empty");
        if (servedModelName != null && servedModelName.isBlank()) throw new IllegalArgumentException("the served model name is empty");
    }

    public ServeOptions withApiKey(String key) {
        return new ServeOptions(servedModelName, key, allowedHosts);
    }

    public ServeOptions withServedModelName(String name) {
        return new ServeOptions(name, apiKey, allowedHosts);
    }

    public ServeOptions withAllowedHosts(List<String> hosts) {
        return new ServeOptions(servedModelName, apiKey, hosts);
    }
}
