package io.llava4j.serve;

/** An error answered as OpenAI's {@code {"error": {"message", "type", "param", "code"}}} with an HTTP status. */
final class ApiError extends RuntimeException {
    final int status;
    final String type, code, param;

    ApiError(int status, String type, String code, String param, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
    }

    static ApiError invalid(String code, String param, String message) {
        return new ApiError(400, "invalid_request_error", code, param, message);
    }
}
