package io.llava4j.engine;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@link BlasThreads#single}: one OpenBLAS thread inside, the count before restored after the last overlapping call. */
class BlasThreadsTest {
    @Test
    void singleSetsOneThreadAndRestoresAfterTheLastOverlappingCall() throws Exception {
        assumeTrue(BlasThreads.available(), "this process's OpenBLAS exports openblas_set_num_threads");
        int before = BlasThreads.get();
        try {
            BlasThreads.set(2);
            assertEquals(5, BlasThreads.single(() -> {
                assertEquals(1, BlasThreads.get());
                return BlasThreads.single(() -> BlasThreads.get() + 4); // nested: still one thread
            }));
            assertEquals(2, BlasThreads.get());

            CountDownLatch bothInside = new CountDownLatch(2), firstLeft = new CountDownLatch(1);
            ExecutorService two = Executors.newFixedThreadPool(2);
            try {
                Future<Integer> first = two.submit(() -> BlasThreads.single(() -> {
                    bothInside.countDown();
                    await(bothInside);
                    return BlasThreads.get();
                }));
                Future<Integer> second = two.submit(() -> BlasThreads.single(() -> {
                    bothInside.countDown();
                    await(bothInside);
                    await(firstLeft); // the first call has ended: still one thread while this one runs
                    return BlasThreads.get();
                }));
                assertEquals(1, first.get());
                firstLeft.countDown();
                assertEquals(1, second.get());
            } finally {
                two.shutdown();
            }
            assertEquals(2, BlasThreads.get());
        } finally {
            BlasThreads.set(before);
        }
    }

    private static void await(CountDownLatch l) {
        try {
            l.await();
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
