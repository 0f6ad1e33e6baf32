package io.llava4j.train;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * The order samples are visited in an epoch: a seeded shuffle, or LLaVA's {@code --group_by_modality_length}
 * (megabatches of only-image or only-text samples, longest first inside each, megabatches shuffled; the leftovers
 * of both modalities last). Deterministic in (seed, epoch), so a resumed run sees the same order.
 */
public final class Sampler {
    private Sampler() {}

    public static int[] order(int n, long seed, int epoch, int batch, int[] modalityLengths, boolean groupByModality) {
        Random rnd = new Random(seed * 1_000_003L + epoch);
        if (!groupByModality) return permutation(n, rnd);
        List<Integer> mm = new ArrayList<>(), lang = new ArrayList<>();
        for (int i = 0; i < n; i++) (modalityLengths[i] > 0 ? mm : lang).add(i);
        if (mm.isEmpty() || lang.isEmpty()) return flatten(lengthGrouped(all(n), modalityLengths, batch, rnd));
        List<List<Integer>> mmMega = lengthGrouped(mm, modalityLengths, batch, rnd);
        List<List<Integer>> langMega = lengthGrouped(lang, modalityLengths, batch, rnd);
        List<Integer> additional = new ArrayList<>(mmMega.remove(mmMega.size() - 1));
        additional.addAll(langMega.remove(langMega.size() - 1));
        List<List<Integer>> mega = new ArrayList<>(mmMega);
        mega.addAll(langMega);
        int[] perm = permutation(mega.size(), rnd);
        List<List<Integer>> shuffled = new ArrayList<>();
        for (int i : perm) shuffled.add(mega.get(i));
        additional.sort(null);
        if (!additional.isEmpty()) shuffled.add(additional);
        return flatten(shuffled);
    }

    private static List<Integer> all(int n) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < n; i++) l.add(i);
        return l;
    }

    /** Shuffle, cut into megabatches of {@code batch}, sort each by length descending. */
    private static List<List<Integer>> lengthGrouped(List<Integer> idx, int[] lengths, int batch, Random rnd) {
        int[] perm = permutation(idx.size(), rnd);
        List<List<Integer>> out = new ArrayList<>();
        for (int s = 0; s < perm.length; s += batch) {
            List<Integer> mb = new ArrayList<>();
            for (int k = s; k < Math.min(perm.length, s + batch); k++) mb.add(idx.get(perm[k]));
            mb.sort(Comparator.comparingInt((Integer i) -> Math.abs(lengths[i])).reversed());
            out.add(mb);
        }
        return out;
    }

    private static int[] permutation(int n, Random rnd) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    private static int[] flatten(List<List<Integer>> mega) {
        return mega.stream().flatMap(List::stream).mapToInt(Integer::intValue).toArray();
    }
}
