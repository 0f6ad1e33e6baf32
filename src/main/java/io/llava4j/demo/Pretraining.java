package io.llava4j.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.config.TextConfig;
import io.llava4j.config.VisionConfig;
import io.llava4j.data.ImageProcessor;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.engine.Tensors;
import io.llava4j.io.HostTensor;
import io.llava4j.io.JsonFiles;
import io.llava4j.io.Safetensors;
import io.llava4j.model.ClipVisionTower;
import io.llava4j.model.Llama;
import io.llava4j.model.Llava;
import io.llava4j.nn.Linear;
import io.llava4j.train.AdamW;
import io.llava4j.train.LrSchedule;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Module;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Pre-training from nothing: the tiny LLaMA on the world's text (next-token prediction) and the tiny CLIP vision tower
 * contrastively against a small causal text encoder on image–caption pairs (CLIP's symmetric InfoNCE, pooled at the
 * last token). Each is written as the Hugging Face folder LLaVA starts from.
 */
public final class Pretraining {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Pretraining() {}

    /** GPT-2 / LLaMA style init: N(0, 0.02) for every weight matrix and embedding; norms stay 1 / 0. */
    static void init(Module m, long seed) {
        torch.manual_seed(seed);
        try (NoGradGuard g = new NoGradGuard()) {
            for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
                String[] parts = e.getKey().split("\\.");
                String owner = parts.length >= 2 ? parts[parts.length - 2] : "";
                if (owner.contains("norm") || owner.contains("layrnorm")) continue;
                if (parts[parts.length - 1].equals("bias")) e.getValue().zero_();
                else e.getValue().normal_(0.0, 0.02, null);
            }
        }
    }

    /** Called after each step with the step number (from 1) and its loss. */
    public interface StepListener {
        void step(int step, double loss);
    }

    /** Losses per step, for the report. */
    public record Curve(List<Double> losses, double seconds) {}

    /**
     * Trains {@code lm} on the documents in order, {@code batch} per step; returns the loss curve. With {@code composed}, each grid word's input
     * embedding is, throughout pre-training, the sum of its parts' embeddings ("left_small_red_circle" = left + small +
     * red + circle, halved; {@link #composition}), as subword models compose a word from its pieces: the LLM then reads
     * a grid word's attributes the way it reads them in a caption, instead of learning each of the 145 grid words from
     * its few occurrences. At the end the composed rows are written into the embedding, so the saved model is a plain
     * LLaMA whose grid-word embeddings are those sums.
     *
     * <p>While {@code spareCore} says so, a step's two length buckets run at once, each on its own thread
     * ({@link #backwardInBuckets}: the same gradients bit for bit, so when the spare core comes does not change the result).
     */
    static Curve trainLlm(Llama lm, LlavaTokenizer tok, List<String> texts, int batch, double lr, boolean composed,
                          java.util.function.BooleanSupplier spareCore, StepListener progress) {
        if (texts.isEmpty() || texts.size() % batch != 0)
            throw new IllegalArgumentException(texts.size() + " pre-training documents do not make whole batches of " + batch);
        int steps = texts.size() / batch;
        AdamW opt = optimizer(lm, lr, 0.01);
        LrSchedule schedule = new LrSchedule("cosine", Math.max(1, steps / 20), steps);
        List<Double> losses = new ArrayList<>();
        Tensor weight = lm.model.embedTokens.weight;
        Tensor compose = composed ? composition(tok, (int) weight.size(0)) : null;
        long t0 = System.nanoTime();
        for (int step = 0; step < steps; step++) {
            List<int[]> docs = new ArrayList<>();
            for (int b = 0; b < batch; b++) docs.add(tok.encode(texts.get(step * batch + b), true));
            opt.scaleLr(schedule.factor(step));
            double loss = backwardInBuckets(lm, compose, docs, tok.pad(), spareCore.getAsBoolean());
            try (PointerScope scope = new PointerScope()) {
                step(opt);
            }
            losses.add(loss);
            progress.step(step + 1, losses.get(step));
        }
        if (compose != null)
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                weight.copy_(compose.matmul(weight));
            }
        return new Curve(losses, (System.nanoTime() - t0) / 1e9);
    }

    /**
     * [V, V]: the identity, except that the row of each grid word ({@link ShapesWorld#cellWord}) holds 1/2 at each of its
     * four parts' ids (and 0 at its own), so that {@code composition × E} gives every grid word the halved sum of its
     * parts' embeddings.
     */
    static Tensor composition(LlavaTokenizer tok, int vocab) {
        float[] m = new float[vocab * vocab];
        for (int i = 0; i < vocab; i++) m[i * vocab + i] = 1;
        for (String w : ShapesWorld.vocabulary()) {
            if (!w.contains("_")) continue;
            int row = tok.tokenIdOf(w);
            m[row * vocab + row] = 0;
            for (String part : w.split("_")) m[row * vocab + tok.tokenIdOf(part)] += 0.5f;
        }
        return Tensors.floats(m, vocab, vocab);
    }

    /**
     * Length buckets of a pre-training batch. A list caption is a third as long as a chat: one padded batch of 40 world
     * documents holds 3,135 positions for 1,439 tokens; two buckets 2,132, eight 1,578. The demo stays at two: eight
     * give the same gradients up to rounding, yet with them the seed-42 demo reached VQA 0.71 instead of 0.82 (yes/no
     * fell to chance, 0.49 against 0.84). Which lookups the tiny LLM learns swings with rounding; the measured default
     * is kept.
     */
    static final int LENGTH_BUCKETS = 2;

    /**
     * Backward of the mean next-token cross entropy of documents (each BOS-first) with the input embedding
     * {@code compose × E} (E where {@code compose} is null): the documents sorted by length and cut into
     * {@link #LENGTH_BUCKETS} buckets, one forward and backward each, all divided by the tokens of all documents, so that
     * the gradients are those of one padded batch. Returns the loss.
     *
     * <p>With {@code concurrent} the two buckets run at once, the first on a second thread (one intra-op thread each):
     * each tensor's gradient is then the sum of the same two bucket gradients, added in whichever order the backward
     * passes finish, and with two terms a + b = b + a bit for bit, so the result is the sequential one exactly.
     */
    static double backwardInBuckets(Llama lm, Tensor compose, List<int[]> docs, int pad, boolean concurrent) {
        List<int[]> sorted = new ArrayList<>(docs);
        sorted.sort(java.util.Comparator.comparingInt(d -> d.length));
        long predicted = 0;
        for (int[] d : sorted) predicted += d.length - 1;
        int n = sorted.size();
        int k = Math.max(1, Math.min(n, LENGTH_BUCKETS));
        List<List<int[]>> buckets = new ArrayList<>();
        for (int bucket = 0; bucket < k; bucket++) buckets.add(sorted.subList(bucket * n / k, (bucket + 1) * n / k));
        long tokens = Math.max(1, predicted);
        if (!concurrent || k != 2) {
            double loss = 0;
            for (List<int[]> b : buckets) loss += bucketBackward(lm, compose, b, pad, tokens);
            return loss;
        }
        java.util.concurrent.Future<Double> first = BUCKET_THREAD.submit(() -> {
            torch.set_num_threads(1); // this thread's OpenMP team
            return bucketBackward(lm, compose, buckets.get(0), pad, tokens);
        });
        double second;
        try {
            second = bucketBackward(lm, compose, buckets.get(1), pad, tokens);
        } catch (RuntimeException | Error e) {
            try {
                first.get();
            } catch (Exception ignored) { // the first error is the one reported
            }
            throw e;
        }
        try {
            return 0.0 + first.get() + second; // the sequential sum's order
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted in the LLM's pre-training step", e);
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) throw re;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException(e.getCause());
        }
    }

    /** The thread of the first bucket when two run at once. */
    private static final java.util.concurrent.ExecutorService BUCKET_THREAD = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "llava4j-pretrain-bucket");
        t.setDaemon(true);
        return t;
    });

    /** One bucket's forward and backward (its summed token losses over {@code tokens}); returns its share of the loss. */
    private static double bucketBackward(Llama lm, Tensor compose, List<int[]> bucket, int pad, long tokens) {
        Tensor weight = lm.model.embedTokens.weight;
        try (PointerScope scope = new PointerScope()) {
            Tensor[] t = padded(bucket, pad);
            Tensor embeds = torch.embedding(compose == null ? weight : compose.matmul(weight), t[0]);   // [b, T, h]
            Tensor sum = Llava.tokenLosses(lm.forward(embeds), t[1]).sum().div(new Scalar((double) tokens));
            sum.backward();
            return sum.item_double();
        }
    }

    /** Summed next-token NLL and token count of documents under {@code lm} (no grad). */
    static double[] nll(Llama lm, List<int[]> docs, int pad, int batch) {
        double sum = 0;
        long n = 0;
        for (int i = 0; i < docs.size(); i += batch) {
            try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                Tensor[] t = padded(docs.subList(i, Math.min(docs.size(), i + batch)), pad);
                Tensor logits = lm.forward(torch.embedding(lm.model.embedTokens.weight, t[0]));
                sum += Llava.tokenLosses(logits, t[1]).sum().item_double();
                n += Llava.supervisedTokens(t[1]);
            }
        }
        return new double[]{sum, n};
    }

    /** [B, T] ids (padded with {@code pad}) and labels (-100 at padding). */
    private static Tensor[] padded(List<int[]> docs, int pad) {
        int T = 0;
        for (int[] d : docs) T = Math.max(T, d.length);
        long[] ids = new long[docs.size() * T], labels = new long[docs.size() * T];
        java.util.Arrays.fill(ids, pad);
        java.util.Arrays.fill(labels, Llava.IGNORE_INDEX);
        for (int b = 0; b < docs.size(); b++)
            for (int j = 0; j < docs.get(b).length; j++) {
                ids[b * T + j] = docs.get(b)[j];
                labels[b * T + j] = docs.get(b)[j];
            }
        return new Tensor[]{Tensors.longs(ids, docs.size(), T), Tensors.longs(labels, docs.size(), T)};
    }

    /** The CLIP pair: the vision tower, a causal text encoder, and the two projections into the joint space. */
    static final class Clip extends Module {
        final ClipVisionTower vision;
        final Llama.Model text;
        final Linear visualProjection, textProjection;
        final Tensor logitScale; // [] log of the inverse temperature
        final int layers;
        /**
         * Weights of the region–word terms (kind, colour, size). Each term starts on a plateau at ln(values): while the
         * region features do not tell the values apart, the words' text features drift together and neither side gets
         * a gradient to leave it. Weighted 1 like the other terms, colour and size (linear in the pixels) leave it early
         * and kind (a shape, not a colour sum) stays near ln 4 for most of the run; weighted up, each leaves it early.
         */
        double[] wordWeights = {1, 1, 1};
        /** With the system property llava4j.demo.terms: running sums of each loss term (clip, region, kind, colour, size) for the lab. */
        final double[] terms = Boolean.getBoolean("llava4j.demo.terms") ? new double[5] : null;

        Clip(VisionConfig vc, TextConfig tc, int dim) {
            vision = register_module("vision_model_tower", new ClipVisionTower(vc));
            Llama textLm = new Llama(tc);
            text = register_module("text_model", textLm.model);
            visualProjection = register_module("visual_projection", new Linear(vc.hiddenSize(), dim, false));
            textProjection = register_module("text_projection", new Linear(tc.hiddenSize(), dim, false));
            logitScale = io.llava4j.nn.Params.register(this, "logit_scale", torch.full(new long[]{}, new Scalar(Math.log(1 / 0.07))));
            layers = vc.numHiddenLayers();
        }

        /**
         * [B, 1 + P, h] last-layer states → [B, dim], unit length: post_layernorm of the mean over all tokens, projected.
         * The mean (rather than CLIP's CLS token alone) makes every patch token carry what the caption says from the
         * first steps on, and the patch tokens are what LLaVA's projector reads.
         */
        Tensor imageEmbeds(Tensor states) {
            Tensor pooled = vision.visionModel.postLayernorm.forward(states.mean(new long[]{1}, false, new org.bytedeco.pytorch.ScalarTypeOptional())); // [B, h]
            return unit(visualProjection.forward(pooled));
        }

        /**
         * The regions of objects: for each (image b, cell k of the 3×3 grid, k = row * 3 + column) in {@code regions}
         * (as b * 9 + k), the mean of the patch tokens whose centre lies in that cell, post_layernorm'd and projected →
         * [R, dim], unit length.
         */
        Tensor regionEmbeds(Tensor states, long[] regions) {
            long b = states.size(0), p = states.size(1) - 1, h = states.size(2);
            int side = (int) Math.round(Math.sqrt(p));
            float[] m = new float[(int) (9 * p)];
            int[] per = new int[9];
            for (int i = 0; i < p; i++) per[cell(i, side)]++;
            for (int i = 0; i < p; i++) m[(int) (cell(i, side) * p + i)] = 1f / per[cell(i, side)];
            Tensor cells = Tensors.floats(m, 9, p).matmul(states.narrow(1, 1, p));        // [B, 9, h]
            Tensor picked = cells.reshape(b * 9, h).index_select(0, Tensors.longs(regions, regions.length)); // [R, h]
            return unit(visualProjection.forward(vision.visionModel.postLayernorm.forward(picked)));
        }

        /** The grid cell (row * 3 + column) of patch {@code i} of a {@code side}×{@code side} patch grid. */
        private static int cell(int i, int side) {
            return (i / side) * 3 / side * 3 + (i % side) * 3 / side;
        }

        /** Token ids (each ending in EOS) → [B, dim], unit length: the mean of the encoder's hidden states over each text's tokens. */
        Tensor textEmbeds(List<int[]> texts, int pad) {
            Tensor[] t = padded(texts, pad);
            long b = texts.size(), T = t[0].size(1);
            float[] last = new float[(int) (b * T)];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < texts.get(i).length; j++) last[(int) (i * T) + j] = 1f / texts.get(i).length;
            Tensor h = text.forward(torch.embedding(text.embedTokens.weight, t[0]));   // [B, T, h]
            Tensor pooled = h.mul(Tensors.floats(last, b, T, 1)).sum(new long[]{1}, false, new org.bytedeco.pytorch.ScalarTypeOptional()); // [B, h]
            return unit(textProjection.forward(pooled));
        }

        private static Tensor unit(Tensor x) {
            return x.div(x.norm(new org.bytedeco.pytorch.ScalarOptional(new Scalar(2.0)), new long[]{-1}, true));
        }

        private Tensor scale() {
            return logitScale.clamp_max(new Scalar(Math.log(100))).exp();
        }

        /**
         * CLIP's loss: mean of the image→text and text→image cross entropies over the batch's pairs; plus, where
         * {@code regions} is given, the region–phrase term (as RegionCLIP / GLIP align regions with phrases): each object's
         * cell of patch tokens against the phrases of the batch's distinct objects ("left : small red circle": the column
         * is in the phrase, so each patch token must carry its own column, which the LLM cannot get from rotary
         * positions), cross entropy towards its own phrase.
         *
         * @param regions       b * 9 + cell (row * 3 + column) of each object in the batch, or null
         * @param regionPhrase  for each region, the index of its phrase in {@code phrases}
         */
        Tensor loss(Tensor pixels, List<int[]> texts, int pad, long[] regions, long[] regionPhrase, List<int[]> phrases) {
            return loss(pixels, texts, pad, regions, regionPhrase, phrases, null, null, null);
        }

        /**
         * As above, plus, where {@code attributeWords} is given, the region–word terms (GLIP's word–region alignment):
         * each object's region against the words of each attribute (the kinds, the colours, the sizes), cross entropy
         * towards its own word. In-batch phrases rarely differ in the kind alone, so the region–phrase term can match
         * a phrase by colour and size; the kind term asks for the kind.
         *
         * @param attributeWords per attribute, the token ids (ending in EOS) of each of its words
         * @param regionValues   per attribute, each region's value (index into that attribute's words)
         * @param shapes         attribute-only shapes ({@link AttributeShapes}) whose regions join the region–word terms
         *                       only, each for the attributes it shows; or null
         */
        Tensor loss(Tensor pixels, List<int[]> texts, int pad, long[] regions, long[] regionPhrase, List<int[]> phrases,
                    List<List<int[]>> attributeWords, List<long[]> regionValues, AttributeBatch shapes) {
            Tensor states = vision.features(pixels, layers);                                 // [B, 1 + P, h]
            Tensor img = imageEmbeds(states), txt = textEmbeds(texts, pad);                 // [B, d] each
            Tensor logits = img.matmul(txt.t()).mul(scale());                               // [B, B]
            long b = texts.size();
            long[] diag = new long[(int) b];
            for (int i = 0; i < b; i++) diag[i] = i;
            Tensor target = Tensors.longs(diag, b);
            Tensor a = torch.cross_entropy_loss(logits, target, new TensorOptional(), 1, -100, 0.0);
            Tensor c = torch.cross_entropy_loss(logits.t(), target, new TensorOptional(), 1, -100, 0.0);
            Tensor loss = a.add(c).div(new Scalar(2.0));
            if (regions == null || regions.length == 0) return loss;
            Tensor region = regionEmbeds(states, regions);                                   // [R, d]
            Tensor rl = region.matmul(textEmbeds(phrases, pad).t()).mul(scale());            // [R, U]
            Tensor r = torch.cross_entropy_loss(rl, Tensors.longs(regionPhrase, regionPhrase.length), new TensorOptional(), 1, -100, 0.0);
            if (terms != null) {
                terms[0] += loss.item_double();
                terms[1] += r.item_double();
            }
            loss = loss.add(r);
            if (attributeWords == null) return loss;
            Tensor wordRegions = region;                                                     // [R (+ A), d]
            List<long[]> wordValues = regionValues;
            if (shapes != null) {
                Tensor extra = regionEmbeds(vision.features(shapes.pixels(), layers), shapes.regions()); // [A, d]
                wordRegions = torch.cat(new org.bytedeco.pytorch.TensorVector(region, extra), 0);
                wordValues = new ArrayList<>();
                for (int k = 0; k < regionValues.size(); k++) {
                    long[] own = regionValues.get(k), added = shapes.values().get(k), v = java.util.Arrays.copyOf(own, own.length + added.length);
                    System.arraycopy(added, 0, v, own.length, added.length);
                    wordValues.add(v);
                }
            }
            for (int k = 0; k < attributeWords.size(); k++) {
                Tensor wl = wordRegions.matmul(textEmbeds(attributeWords.get(k), pad).t()).mul(scale()); // [R (+ A), values]
                long[] v = wordValues.get(k);
                Tensor w = torch.cross_entropy_loss(wl, Tensors.longs(v, v.length), new TensorOptional(), 1, -100, 0.0);
                if (wordWeights[k] != 1) w = w.mul(new Scalar(wordWeights[k]));
                if (terms != null) terms[2 + k] += w.item_double();
                loss = loss.add(w);
            }
            return loss;
        }
    }

    /**
     * A step's attribute-only shapes: their images' pixels [A', 3, H, W], each shape's region (image * 9 + cell) and its
     * per-attribute targets (kind, colour, size; -100 where the shape does not show the attribute).
     */
    record AttributeBatch(Tensor pixels, long[] regions, List<long[]> values) {}

    /**
     * Trains the CLIP pair on the tower data's image–caption pairs (with twins, each batch is anchors and their hard
     * negatives); with attribute-only images in the data, each step also takes {@code attributeBatch} of them at random
     * into the region–word terms. Returns the loss curve.
     */
    static Curve trainClip(Clip clip, TowerData data, int pad, int steps, int batch, int attributeBatch, double lr, long seed,
                           StepListener progress) {
        Random r = new Random(seed), shapeRandom = new Random(seed + 17);
        AdamW opt = optimizer(clip, lr, 0.05);
        LrSchedule schedule = new LrSchedule("cosine", Math.max(1, steps / 20), steps);
        List<Double> losses = new ArrayList<>();
        long t0 = System.nanoTime();
        int n = data.anchors();
        Tensor pixels = data.pixels();
        for (int step = 0; step < steps; step++) {
            long[] idx = new long[batch];
            List<int[]> texts = new ArrayList<>();
            for (int b = 0; b < batch; b++) {
                // with twins: anchors in the even slots, each followed by its hard negative
                idx[b] = data.twins() && b % 2 == 1 ? idx[b - 1] + n : r.nextInt(n);
                texts.add(data.captions().get((int) idx[b]));
            }
            opt.scaleLr(schedule.factor(step));
            try (PointerScope scope = new PointerScope()) {
                Tensor px = pixels.index_select(0, Tensors.longs(idx, batch));
                Tensor loss;
                if (data.regions()) {
                    List<Long> regions = new ArrayList<>(), regionPhrase = new ArrayList<>();
                    List<long[]> values = new ArrayList<>();
                    Map<String, Integer> phraseIds = new LinkedHashMap<>();
                    List<int[]> phrases = new ArrayList<>();
                    for (int k = 0; k < batch; k++)
                        for (ShapesWorld.Obj o : data.scenes().get((int) idx[k]).objects()) {
                            regions.add((long) k * 9 + o.row() * 3 + o.position());
                            values.add(new long[]{o.kind(), o.colour(), o.size()});
                            Integer id = phraseIds.get(regionPhrase(o));
                            if (id == null) {
                                id = phrases.size();
                                phraseIds.put(regionPhrase(o), id);
                                phrases.add(data.phraseIds().get(regionPhrase(o)));
                            }
                            regionPhrase.add((long) id);
                        }
                    List<long[]> regionValues = null;
                    if (data.attributeWords() != null) {
                        regionValues = new ArrayList<>();
                        for (int a = 0; a < 3; a++) {
                            long[] v = new long[values.size()];
                            for (int i = 0; i < v.length; i++) v[i] = values.get(i)[a];
                            regionValues.add(v);
                        }
                    }
                    AttributeBatch shapes = data.attributeImages() == null || attributeBatch == 0 ? null
                            : attributeBatch(data, attributeBatch, shapeRandom);
                    loss = clip.loss(px, texts, pad, regions.stream().mapToLong(Long::longValue).toArray(),
                            regionPhrase.stream().mapToLong(Long::longValue).toArray(), phrases, data.attributeWords(), regionValues, shapes);
                } else {
                    loss = clip.loss(px, texts, pad, null, null, null);
                }
                losses.add(update(opt, loss));
            }
            progress.step(step + 1, losses.get(step));
        }
        return new Curve(losses, (System.nanoTime() - t0) / 1e9);
    }

    /** {@code n} of the tower data's attribute-only images at random, with their shapes' regions and targets. */
    private static AttributeBatch attributeBatch(TowerData data, int n, Random r) {
        long[] idx = new long[n];
        List<Long> regions = new ArrayList<>();
        List<long[]> targets = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            idx[i] = r.nextInt(data.attributeImages().size());
            for (AttributeShapes.Shape sh : data.attributeImages().get((int) idx[i]).shapes()) {
                regions.add((long) i * 9 + 3 + sh.position()); // the middle row's cell of its column
                targets.add(sh.targets());
            }
        }
        List<long[]> values = new ArrayList<>();
        for (int a = 0; a < 3; a++) {
            long[] v = new long[targets.size()];
            for (int i = 0; i < v.length; i++) v[i] = targets.get(i)[a];
            values.add(v);
        }
        return new AttributeBatch(data.attributePixels().index_select(0, Tensors.longs(idx, n)),
                regions.stream().mapToLong(Long::longValue).toArray(), values);
    }

    /**
     * What the tower is pre-trained on: the world's training images, preprocessed as LLaVA will ({@code pixels} [N, 3, H, W],
     * the first {@code anchors} rows), each with its caption (ending in EOS); with {@code twins}, rows {@code anchors + i}
     * hold the {@link ShapesWorld#twin} of image i, rendered in memory and preprocessed the same way. Where
     * {@code attributeImages} is not null, {@code attributePixels} [M, 3, H, W] are those images ({@link AttributeShapes}).
     */
    record TowerData(Tensor pixels, List<int[]> captions, List<ShapesWorld.Scene> scenes, int anchors, boolean twins,
                     boolean regions, Map<String, int[]> phraseIds, List<List<int[]>> attributeWords,
                     List<AttributeShapes.Image> attributeImages, Tensor attributePixels) {
        /** The anchors' pixels only. */
        Tensor anchorPixels() {
            return pixels.narrow(0, 0, anchors);
        }
    }

    /**
     * @param regions whether each shape's cell is matched against its phrase ({@link Clip#loss})
     * @param words   whether each shape's cell is also matched against its kind, colour and size words
     * @param attributeShapes how many {@link AttributeShapes} images to make (0: none; they need {@code words})
     */
    static TowerData towerData(WorldData world, ImageProcessor proc, LlavaTokenizer tok, int imageSize, boolean twins, boolean regions,
                               boolean words, int attributeShapes, long seed) throws IOException {
        List<ShapesWorld.Scene> scenes = new ArrayList<>();
        Map<String, int[]> phraseIds = new LinkedHashMap<>();
        int n = world.train.size(), per = 3 * imageSize * imageSize, rows = twins ? 2 * n : n;
        float[] all = new float[rows * per];
        List<int[]> caps = new ArrayList<>();
        List<ShapesWorld.Scene> towerScenes = towerScenes(world, twins, seed);
        for (int i = 0; i < rows; i++) {
            ShapesWorld.Scene scene = towerScenes.get(i);
            float[] px;
            if (i < n) {
                px = proc.process(world.images.resolve(WorldData.trainImage(i)), "square");
            } else {
                java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
                javax.imageio.ImageIO.write(ShapesWorld.render(scene, imageSize), "png", png);
                px = proc.process(png.toByteArray(), "square", "twin of " + WorldData.trainImage(i - n));
            }
            System.arraycopy(px, 0, all, i * per, per);
            scenes.add(scene);
            for (ShapesWorld.Obj o : scene.objects())
                phraseIds.computeIfAbsent(regionPhrase(o), k -> withEos(tok, k));
            caps.add(withEos(tok, ShapesWorld.caption(scene, ShapesWorld.LIST_PHRASING)));
        }
        List<List<int[]>> attributeWords = null;
        if (regions && words) {
            attributeWords = new ArrayList<>();
            for (List<String> values : List.of(ShapesWorld.KINDS, ShapesWorld.COLOURS, ShapesWorld.SIZES)) {
                List<int[]> ids = new ArrayList<>();
                for (String v : values) ids.add(withEos(tok, v));
                attributeWords.add(ids);
            }
        }
        List<AttributeShapes.Image> shapes = null;
        Tensor shapePixels = null;
        if (attributeShapes > 0) {
            if (attributeWords == null) throw new IllegalArgumentException("attribute-only shapes need the region–word terms (clipRegions and clipWords)");
            shapes = AttributeShapes.draw(new Random(seed + 23), attributeShapes);
            float[] sp = new float[attributeShapes * per];
            for (int i = 0; i < attributeShapes; i++) {
                java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
                javax.imageio.ImageIO.write(AttributeShapes.render(shapes.get(i), imageSize), "png", png);
                System.arraycopy(proc.process(png.toByteArray(), "square", "attribute shape " + i), 0, sp, i * per, per);
            }
            shapePixels = Tensors.floats(sp, attributeShapes, 3, imageSize, imageSize);
        }
        return new TowerData(Tensors.floats(all, rows, 3, imageSize, imageSize), caps, scenes, n, twins, regions, phraseIds, attributeWords,
                shapes, shapePixels);
    }

    /**
     * The scenes of the tower's pairs: the training images', then (with {@code twins}) each one's
     * {@link Split#trainingTwin twin} in the same order.
     */
    static List<ShapesWorld.Scene> towerScenes(WorldData world, boolean twins, long seed) {
        List<ShapesWorld.Scene> out = new ArrayList<>(world.train);
        Random r = new Random(seed);
        if (twins) for (ShapesWorld.Scene s : world.train) out.add(world.split.trainingTwin(s, r));
        return out;
    }

    /** Writes the tower's image–caption pairs to clip_captions.jsonl: {"image" (under images/, or "twin of …"), "caption"} per line. */
    static void writeCaptions(List<ShapesWorld.Scene> scenes, int anchors, Path file) throws IOException {
        StringBuilder b = new StringBuilder();
        int n = anchors;
        for (int i = 0; i < scenes.size(); i++) {
            ObjectNode line = JSON.createObjectNode();
            line.put("image", i < n ? WorldData.trainImage(i) : "twin of " + WorldData.trainImage(i - n));
            line.put("caption", ShapesWorld.caption(scenes.get(i), ShapesWorld.LIST_PHRASING));
            b.append(JSON.writeValueAsString(line)).append('\n');
        }
        JsonFiles.writeText(file, b.toString());
    }

    /** What the region–phrase term matches a shape's column against: "left : small red circle" (a clause of {@link ShapesWorld#LIST_PHRASING}). */
    static String regionPhrase(ShapesWorld.Obj o) {
        return o.positionName() + " : " + o.phrase();
    }

    private static int[] withEos(LlavaTokenizer tok, String text) {
        int[] ids = tok.encode(text, false);
        int[] out = java.util.Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = tok.eos();
        return out;
    }

    private static AdamW optimizer(Module m, double lr, double wd) {
        Map<String, Tensor> decay = new LinkedHashMap<>(), noDecay = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) {
            e.getValue().requires_grad_(true);
            (io.llava4j.train.Optimizers.decays(e.getKey()) && e.getValue().dim() >= 2 ? decay : noDecay).put(e.getKey(), e.getValue());
        }
        return new AdamW(List.of(new AdamW.Group("decay", decay, lr, wd), new AdamW.Group("no_decay", noDecay, lr, 0.0)), 0.9, 0.98, 1e-8);
    }

    /** One optimizer step on {@code loss}: backward, clip the gradients' norm to 1, AdamW, zero the gradients. */
    private static double update(AdamW opt, Tensor loss) {
        loss.backward();
        step(opt);
        return loss.item_double();
    }

    /** The step after the backward: clip the gradients' norm to 1, AdamW, zero the gradients. */
    private static void step(AdamW opt) {
        clip(opt, 1.0);
        opt.step();
        opt.zeroGrad();
    }

    private static void clip(AdamW opt, double max) {
        double sq = 0;
        List<Tensor> grads = new ArrayList<>();
        for (AdamW.Group g : opt.groups())
            for (Tensor p : g.params.values())
                if (p.grad().defined()) {
                    grads.add(p.grad());
                    double v = p.grad().norm().item_double();
                    sq += v * v;
                }
        double coef = max / (Math.sqrt(sq) + 1e-6);
        if (coef < 1) for (Tensor g : grads) g.mul_(new Scalar(coef));
    }

    // ---------------------------------------------------------------- HF folders

    /** A LlamaForCausalLM folder: config.json, model.safetensors (HF names) and the tokenizer files. */
    static void saveLlama(Llama lm, TextConfig cfg, Path dir, Path tokenizerDir) throws IOException {
        Files.createDirectories(dir);
        ObjectNode c = JSON.valueToTree(cfg);
        c.putArray("architectures").add("LlamaForCausalLM");
        c.put("bos_token_id", 1);
        c.put("eos_token_id", 2);
        c.put("torch_dtype", "float32");
        JsonFiles.write(dir.resolve("config.json"), c);
        Safetensors.write(dir.resolve("model.safetensors"), host(lm), Map.of("format", "pt"));
        for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
            Files.copy(tokenizerDir.resolve(f), dir.resolve(f), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    /** A CLIPVisionModel folder: config.json, model.safetensors ({@code vision_model.…}) and preprocessor_config.json. */
    static void saveClipVision(ClipVisionTower tower, VisionConfig cfg, Path dir) throws IOException {
        Files.createDirectories(dir);
        ObjectNode c = JSON.valueToTree(cfg);
        c.put("model_type", "clip_vision_model");
        c.putArray("architectures").add("CLIPVisionModel");
        JsonFiles.write(dir.resolve("config.json"), c);
        Safetensors.write(dir.resolve("model.safetensors"), host(tower), Map.of("format", "pt"));
        ObjectNode p = JSON.createObjectNode();
        p.putObject("crop_size").put("height", cfg.imageSize()).put("width", cfg.imageSize());
        p.put("do_center_crop", true);
        p.put("do_convert_rgb", true);
        p.put("do_normalize", true);
        p.put("do_rescale", true);
        p.put("do_resize", true);
        p.putArray("image_mean").add(0.48145466).add(0.4578275).add(0.40821073);
        p.putArray("image_std").add(0.26862954).add(0.26130258).add(0.27577711);
        p.put("image_processor_type", "CLIPImageProcessor");
        p.put("resample", 3);
        p.put("rescale_factor", 1 / 255.0);
        p.putObject("size").put("shortest_edge", cfg.imageSize());
        JsonFiles.write(dir.resolve("preprocessor_config.json"), p);
    }

    private static Map<String, HostTensor> host(Module m) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : Tensors.namedParameters(m).entrySet()) out.put(e.getKey(), Tensors.hostView(e.getValue()) /* valid while the module lives */);
        return out;
    }
}
