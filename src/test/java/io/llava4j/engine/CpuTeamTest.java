package io.llava4j.engine;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.*;

/** The team covers every index once whatever the grain, passes failures to the caller, and runs a loop posted at once. */
class CpuTeamTest {
    @Test
    void everyIndexRunsExactlyOnce() {
        CpuTeam team = new CpuTeam(3);
        try {
            for (int n : new int[]{1, 7, 16, 100, 1001})
                for (int grain : new int[]{1, 3, 16, 5000}) {
                    AtomicIntegerArray seen = new AtomicIntegerArray(n);
                    team.run(n, grain, (from, to) -> {
                        assertTrue(to - from <= grain && from < to);
                        for (int i = from; i < to; i++) seen.incrementAndGet(i);
                    });
                    for (int i = 0; i < n; i++) assertEquals(1, seen.get(i), "index " + i + " of " + n + ", grain " + grain);
                }
        } finally {
            team.stop();
        }
    }

    @Test
    void aFailingRangeIsRethrownAndTheTeamGoesOn() {
        CpuTeam team = new CpuTeam(2);
        try {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> team.run(100, 1, (from, to) -> {
                if (from == 99) throw new IllegalStateException("range " + from);
            }));
            assertEquals("range 99", e.getMessage());
            AtomicIntegerArray seen = new AtomicIntegerArray(10);
            team.run(10, 1, (from, to) -> seen.incrementAndGet(from));
            for (int i = 0; i < 10; i++) assertEquals(1, seen.get(i));
        } finally {
            team.stop();
        }
    }

    @Test
    void aLoopPostedBeforeTheWorkersFirstRunCompletes() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            for (int i = 0; i < 200; i++) {
                CpuTeam team = new CpuTeam(2);
                AtomicIntegerArray seen = new AtomicIntegerArray(64);
                team.run(64, 1, (from, to) -> {
                    if (from == 0) { // hold the caller on its first range, so the worker must take the others
                        long until = System.nanoTime() + 200_000;
                        while (System.nanoTime() < until) Thread.onSpinWait();
                    }
                    seen.incrementAndGet(from);
                });
                for (int k = 0; k < 64; k++) assertEquals(1, seen.get(k));
                team.stop();
            }
        });
    }
}
