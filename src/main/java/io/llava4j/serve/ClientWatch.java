package io.llava4j.serve;

import jakarta.servlet.http.HttpServletRequest;
import org.eclipse.jetty.io.AbstractEndPoint;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;

import java.io.IOException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Notices a client that closed its connection while its request runs, so generation stops for it (a non-streamed
 * request writes nothing until the end, so a failed write cannot tell). Jetty reads nothing from a connection while a
 * request is being handled; this asks to be told when it becomes readable: end of stream means the client is gone.
 * Bytes there instead (a pipelined next request, which HTTP clients do not send) end the watch; they are lost.
 * {@link #close()} must run before the response completes, so that Jetty can read the connection's next request.
 */
final class ClientWatch implements Callback, AutoCloseable {
    private final EndPoint endPoint;
    private final Runnable onGone;
    private final AtomicBoolean closed = new AtomicBoolean();

    private ClientWatch(EndPoint endPoint, Runnable onGone) {
        this.endPoint = endPoint;
        this.onGone = onGone;
    }

    /** Starts watching {@code req}'s connection; {@code onGone} runs (once, on a Jetty thread) if the client closes it. */
    static ClientWatch start(HttpServletRequest req, Runnable onGone) {
        Request base = Request.getBaseRequest(req);
        EndPoint ep = base == null || base.getHttpChannel() == null ? null : base.getHttpChannel().getEndPoint();
        ClientWatch w = new ClientWatch(ep, onGone);
        if (ep == null || !ep.tryFillInterested(w)) w.closed.set(true);
        return w;
    }

    @Override
    public void succeeded() {
        if (closed.get()) return;
        try {
            int n = endPoint.fill(BufferUtil.allocate(1)); // Jetty's fill appends after the limit: an empty buffer in flush mode
            if (n < 0) gone();
            else if (n == 0) {
                if (!endPoint.tryFillInterested(this)) closed.set(true);
            } else {
                closed.set(true);
            }
        } catch (IOException e) {
            gone();
        }
    }

    @Override
    public void failed(Throwable x) {
        if (closed.get()) return;
        if (x instanceof TimeoutException && endPoint.isOpen()) { // Jetty's idle timeout: the client may still be waiting
            if (!endPoint.tryFillInterested(this)) closed.set(true);
            return;
        }
        gone();
    }

    private void gone() {
        if (closed.compareAndSet(false, true)) onGone.run();
    }

    /** Stops watching and hands the connection's reads back to Jetty. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true) && endPoint instanceof AbstractEndPoint a) a.getFillInterest().fillable();
    }

    @Override
    public InvocationType getInvocationType() {
        return InvocationType.NON_BLOCKING;
    }
}
