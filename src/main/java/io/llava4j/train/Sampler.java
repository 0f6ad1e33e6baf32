package io.llava4j.train;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;

/**
 * The order samples are visited in an epoch: a seeded shuffle, or LLaVA's {@code --group_by_modality_length}
 * (LLaVA's llava_trainer.py, {@code get_modality_length_grouped_indices}): its trainer passes
 * {@code world_size = world_size × gradient_accumulation_steps}, so megabatches hold {@code batch × that} samples of
 * one modality, each sorted longest first and split into that many even chunks ({@code split_to_even_chunks}); the
 * megabatches are shuffled; the last, partial megabatch of each modality is joined into one tail, whose first
 * megabatch-size samples go to the front when it is that long. Deterministic in (seed, epoch), so a resumed run sees
 * the same order. (LLaVA asserts that both modalities are present; with one, this groups that one by length.)
 */
public final class Sampler {
    private Sampler() {}

    /** One process, no accumulation. */
    public static int[] order(int n, long seed, int epoch, int batch, int[] modalityLengths, boolean groupByModality) {
        return order(n, seed, epoch, batch, 1, modalityLengths, groupByModality);
    }

    /** @param chunks LLaVA's {@code world_size}: processes × gradient accumulation steps */
    public static int[] order(int n, long seed, int epoch, int batch, int chunks, int[] modalityLengths, boolean groupByModality) {
        Random rnd = new Random(seed * 1_000_003L + epoch);
        if (!groupByModality) return permutation(n, rnd);
        int mega = batch * chunks;
        List<Integer> mm = new ArrayList<>(), lang = new ArrayList<>();
        for (int i = 0; i < n; i++) (modalityLengths[i] > 0 ? mm : lang).add(i);
        if (mm.isEmpty() || lang.isEmpty()) return flatten(lengthGrouped(all(n), modalityLengths, mega, chunks, rnd));
        List<List<Integer>> mmMega = cut(flatten(lengthGrouped(mm, modalityLengths, mega, chunks, rnd)), mega);
        List<List<Integer>> langMega = cut(flatten(lengthGrouped(lang, modalityLengths, mega, chunks, rnd)), mega);
        List<Integer> additional = new ArrayList<>(mmMega.remove(mmMega.size() - 1));
        additional.addAll(langMega.remove(langMega.size() - 1));
        List<List<Integer>> all = new ArrayList<>(mmMega);
        all.addAll(langMega);
        int[] perm = permutation(all.size(), rnd);
        List<List<Integer>> shuffled = new ArrayList<>();
        for (int i : perm) shuffled.add(all.get(i));
        if (additional.size() >= mega) {
            shuffled.add(0, new ArrayList<>(additional.subList(0, mega)));
            additional = new ArrayList<>(additional.subList(mega, additional.size()));
        }
        if (!additional.isEmpty()) shuffled.add(additional);
        return flatten(shuffled);
    }

    private static List<Integer> all(int n) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < n; i++) l.add(i);
        return l;
    }

    private static List<List<Integer>> cut(int[] order, int size) {
        List<List<Integer>> out = new ArrayList<>();
        for (int s = 0; s < order.length; s += size) {
            List<Integer> mb = new ArrayList<>();
            for (int k = s; k < Math.min(order.length, s + size); k++) mb.add(order[k]);
            out.add(mb);
        }
        return out;
    }

    /** LLaVA's get_length_grouped_indices: shuffle, megabatches of {@code mega}, each sorted longest first and split into even chunks. */
    private static List<List<Integer>> lengthGrouped(List<Integer> idx, int[] lengths, int mega, int chunks, Random rnd) {
        int[] perm = permutation(idx.size(), rnd);
        List<List<Integer>> out = new ArrayList<>();
        for (int s = 0; s < perm.length; s += mega) {
            List<Integer> mb = new ArrayList<>();
            for (int k = s; k < Math.min(perm.length, s + mega); k++) mb.add(idx.get(perm[k]));
            mb.sort(Comparator.comparingInt((Integer i) -> Math.abs(lengths[i])).reversed());
            for (List<Integer> c : evenChunks(mb, lengths, chunks)) out.add(c);
        }
        return out;
    }

    /** LLaVA's split_to_even_chunks: each index, longest first, to the chunk with the least total length that is not full. */
    static List<List<Integer>> evenChunks(List<Integer> indices, int[] lengths, int chunks) {
        List<List<Integer>> out = new ArrayList<>();
        for (int c = 0; c < chunks; c++) out.add(new ArrayList<>());
        if (indices.size() % chunks != 0) {
            for (int k = 0; k < indices.size(); k++) out.get(k % chunks).add(indices.get(k));
            return out;
        }
        int per = indices.size() / chunks;
        double[] total = new double[chunks];
        for (int i : indices) {
            int shortest = 0;
            for (int c = 1; c < chunks; c++) if (total[c] < total[shortest]) shortest = c;
            out.get(shortest).add(i);
            total[shortest] += Math.abs(lengths[i]);
            if (out.get(shortest).size() == per) total[shortest] = Double.POSITIVE_INFINITY;
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
