package io.llava4j.generate;

import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Continuous batching against the one-at-a-time {@link Generator}: requests of different prompt lengths join a running
 * batch at chosen tokens (submitted from another request's token callback, so the step they join at is fixed), leave
 * it by max tokens, a stop token or their client, and get exactly the tokens they get alone.
 */
class ContinuousBatcherTest {
    static Assistant tiny, gqa;
    static final Path IMAGE = TestData.tinyData().resolve("images/img0.png");

    @BeforeAll
    static void load() {
        tiny = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT);
        gqa = Assistant.load(TestData.gqa().resolve("model"), Assistant.Options.DEFAULT);
    }

    @AfterAll
    static void close() {
        tiny.close();
        gqa.close();
    }

    /** A request and what the batch told its client. */
    static final class Req implements ContinuousBatcher.Client {
        final String name;
        final Generator generator;
        final boolean image;
        final int[] prompt;
        final Sampling sampling;
        final List<Integer> tokens = Collections.synchronizedList(new ArrayList<>());
        final Map<Integer, Runnable> atToken = new ConcurrentHashMap<>(); // after the k-th token (1-based)
        final CompletableFuture<Generator.Result> done = new CompletableFuture<>();
        final List<String> log;
        volatile boolean cancelled;
        volatile int tokensWhenCancelled = -1;

        Req(String name, Assistant a, Generator g, String question, boolean image, Sampling s, List<String> log) {
            this.name = name;
            this.generator = g;
            this.image = image;
            this.prompt = a.encode(Prompts.runLlava(Template.VICUNA_V1, question, image), image);
            this.sampling = s;
            this.log = log;
        }

        void cancel() {
            tokensWhenCancelled = tokens.size();
            cancelled = true;
        }

        @Override
        public void start() {
            log.add("start " + name);
        }

        @Override
        public boolean onToken(int token) {
            tokens.add(token);
            Runnable r = atToken.get(tokens.size());
            if (r != null) r.run();
            return !cancelled;
        }

        @Override
        public void finished(Generator.Result result) {
            log.add("end " + name);
            done.complete(result);
        }

        @Override
        public void failed(Throwable error) {
            log.add("end " + name);
            done.completeExceptionally(error);
        }

        void submitTo(ContinuousBatcher b, Assistant a) {
            a.submit(b, generator, image ? a.image(IMAGE) : null, prompt, sampling, this);
        }

        /** What the one-at-a-time path generates for this request. */
        int[] alone(Assistant a) {
            return a.generate(generator, image ? a.image(IMAGE) : null, prompt, sampling, null).tokens();
        }

        Generator.Result result() throws Exception {
            return done.get(60, TimeUnit.SECONDS);
        }
    }

    static final class Steps implements IntConsumer {
        final List<Integer> rows = Collections.synchronizedList(new ArrayList<>());

        @Override
        public void accept(int m) {
            rows.add(m);
        }

        int max() {
            synchronized (rows) {
                return rows.stream().mapToInt(Integer::intValue).max().orElse(0);
            }
        }
    }

    void joinLeaveSameTokens(Assistant a) throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        Generator g = a.generator();
        Req longest = new Req("A", a, g.ignoringStopTokens(), "What shape is on top?", true, Sampling.greedy(24), log);
        Req text = new Req("B", a, g.ignoringStopTokens(), "Describe the picture in a few words, please, with colours and shapes", false, Sampling.greedy(16), log);
        Req brief = new Req("C", a, g.ignoringStopTokens(), "Colour?", true, Sampling.greedy(3), log); // leaves by max tokens
        Req sampled = new Req("D", a, g.ignoringStopTokens(), "Count the shapes.", true, new Sampling(20, 0.9, 0.8, 1234, 0.3, 0.5), log);
        // E leaves at a stop token: its own 4th token when run alone
        Req probe = new Req("E", a, g.ignoringStopTokens(), "Where is the circle?", false, Sampling.greedy(12), log);
        int stopAt = probe.alone(a)[3];
        Req stopped = new Req("E", a, new Generator(a.model(), stopAt), "Where is the circle?", false, Sampling.greedy(12), log);
        List<Req> all = List.of(longest, text, brief, sampled, stopped);
        Map<Req, int[]> expected = new java.util.HashMap<>();
        for (Req r : all) expected.put(r, r.alone(a));
        int[] e = expected.get(stopped);
        assertTrue(e.length <= 4 && e[e.length - 1] == stopAt, "E stops at its stop token alone");

        Steps steps = new Steps();
        try (ContinuousBatcher b = a.batcher(8, steps)) {
            longest.atToken.put(2, () -> text.submitTo(b, a));
            longest.atToken.put(4, () -> {
                brief.submitTo(b, a);
                sampled.submitTo(b, a);
            });
            text.atToken.put(3, () -> stopped.submitTo(b, a));
            longest.submitTo(b, a);
            for (Req r : all) {
                Generator.Result res = r.result();
                assertArrayEquals(expected.get(r), res.tokens(), r.name + " in the batch");
                assertEquals(r == stopped ? "stop" : "length", res.stopReason(), r.name);
            }
        }
        assertTrue(steps.max() >= 4, "requests shared decoding steps: " + steps.rows);
        assertEquals(List.of("start A", "start B"), log.subList(0, 2));
    }

    @Test
    void requestsJoiningAndLeavingGetTheTokensTheyGetAlone() throws Exception {
        joinLeaveSameTokens(tiny);
    }

    @Test
    void groupedQueryAttentionModel() throws Exception {
        joinLeaveSameTokens(gqa);
    }

    @Test
    void aCancelledRequestLeavesWithinOneStepWhileTheOthersContinue() throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        Generator g = tiny.generator().ignoringStopTokens();
        Req a = new Req("A", tiny, g, "What shape is on top?", true, Sampling.greedy(30), log);
        Req b = new Req("B", tiny, g, "Colour?", true, Sampling.greedy(30), log);
        Req c = new Req("C", tiny, g, "Count the shapes.", false, Sampling.greedy(30), log);
        int[] aloneA = a.alone(tiny), aloneC = c.alone(tiny);
        Steps steps = new Steps();
        try (ContinuousBatcher batch = tiny.batcher(4, steps)) {
            a.atToken.put(1, () -> {
                b.submitTo(batch, tiny);
                c.submitTo(batch, tiny);
            });
            a.atToken.put(8, b::cancel); // B's client leaves while A's token of this step is being handled
            a.submitTo(batch, tiny);
            Generator.Result rb = b.result();
            assertEquals("cancelled", rb.stopReason());
            assertTrue(rb.tokens().length <= b.tokensWhenCancelled + 1,
                    "B got " + (rb.tokens().length - b.tokensWhenCancelled) + " tokens after it left");
            assertArrayEquals(aloneA, a.result().tokens());
            assertArrayEquals(aloneC, c.result().tokens());
        }
        int left = steps.rows.indexOf(2);
        assertTrue(left > 0 && steps.rows.subList(0, left).stream().allMatch(m -> m == 3) && steps.rows.subList(left, steps.rows.size()).stream().allMatch(m -> m == 2),
                "3 rows until B left, then 2: " + steps.rows);
        assertTrue(left <= 8, "B left by step " + left + ": " + steps.rows);
    }

    @Test
    void maxBatchBoundsTheRowsAndTheRestWait() throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        Generator g = tiny.generator().ignoringStopTokens();
        List<Req> reqs = new ArrayList<>();
        String[] questions = {"What shape is on top?", "Colour?", "Count the shapes.", "Where is the circle?"};
        for (int i = 0; i < 4; i++) reqs.add(new Req("R" + i, tiny, g, questions[i], i % 2 == 0, Sampling.greedy(6 + 3 * i), log));
        Steps steps = new Steps();
        try (ContinuousBatcher batch = tiny.batcher(2, steps)) {
            for (Req r : reqs) r.submitTo(batch, tiny);
            for (Req r : reqs) assertArrayEquals(r.alone(tiny), r.result().tokens(), r.name);
        }
        assertEquals(2, steps.max(), "rows per step: " + steps.rows);
        int inside = 0, most = 0;
        synchronized (log) {
            for (String event : log) {
                inside += event.startsWith("start") ? 1 : -1;
                most = Math.max(most, inside);
            }
        }
        assertEquals(2, most, "requests between start and end at once: " + log);
        assertEquals(List.of("start R0", "start R1"), log.subList(0, 2), "admitted in arrival order");
        assertEquals("end R0", log.get(2), "R2 waits for a free row: " + log);
    }
}
