package io.llava4j.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.io.JsonFiles;
import io.llava4j.train.Trainer;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import javax.imageio.ImageIO;
import java.awt.Image;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Writes report.json, report.md (a page read in a minute), the loss-curve charts and enlarged sample images. */
final class Report {
    private Report() {}

    static void write(Path out, ObjectNode report, Map<String, Demo.StageResult> stage1, Pretraining.Curve llm,
                      Pretraining.Curve clip, Trainer stage2, WorldData world, List<List<String>> answers) throws IOException {
        System.setProperty("java.awt.headless", "true");
        JsonFiles.write(out.resolve("report.json"), report);
        Path charts = out.resolve("charts");
        Files.createDirectories(charts);
        XYSeriesCollection s1 = new XYSeriesCollection();
        stage1.forEach((name, r) -> s1.addSeries(series(name, r.losses())));
        chart("Stage 1: LLM frozen vs unfrozen, 1x and 10x learning rate", s1, charts.resolve("stage1_loss.png"));
        XYSeriesCollection s2 = new XYSeriesCollection();
        s2.addSeries(series("stage2", stage2.losses()));
        chart("Stage 2 (projector + LLM)", s2, charts.resolve("stage2_loss.png"));
        XYSeriesCollection pre = new XYSeriesCollection();
        pre.addSeries(series("LLM (next token)", llm.losses()));
        pre.addSeries(series("CLIP (contrastive)", clip.losses()));
        chart("Pre-training", pre, charts.resolve("pretrain_loss.png"));

        Path samples = out.resolve("samples");
        Files.createDirectories(samples);
        int n = Math.min(4, world.scenes("test").size());
        for (int i = 0; i < n; i++) {
            BufferedImage src = ImageIO.read(world.images.resolve(WorldData.image("test", i)).toFile());
            BufferedImage big = new BufferedImage(128, 128, BufferedImage.TYPE_INT_RGB);
            big.getGraphics().drawImage(src.getScaledInstance(128, 128, Image.SCALE_FAST), 0, 0, null);
            ImageIO.write(big, "png", samples.resolve(String.format("test_%02d.png", i)).toFile());
        }
        JsonFiles.writeText(out.resolve("report.md"), markdown(report, stage1, world, answers, n));
    }

    private static XYSeries series(String name, List<Double> losses) {
        XYSeries s = new XYSeries(name);
        for (int i = 0; i < losses.size(); i++) if (Double.isFinite(losses.get(i))) s.add(i + 1, losses.get(i));
        return s;
    }

    private static void chart(String title, XYSeriesCollection data, Path file) throws IOException {
        JFreeChart c = ChartFactory.createXYLineChart(title, "step", "loss", data, PlotOrientation.VERTICAL, true, false, false);
        c.getXYPlot().setBackgroundPaint(java.awt.Color.WHITE);
        c.getXYPlot().setDomainGridlinePaint(java.awt.Color.LIGHT_GRAY);
        c.getXYPlot().setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
        ChartUtils.saveChartAsPNG(file.toFile(), c, 800, 450);
    }

    private static String f(double v) {
        return String.format(Locale.ROOT, "%.4g", v);
    }

    private static String markdown(ObjectNode r, Map<String, Demo.StageResult> stage1, WorldData world, List<List<String>> answers, int n) {
        StringBuilder md = new StringBuilder();
        JsonNode ppl = r.get("text_ppl"), s2 = r.get("stage2"), s1 = r.get("stage1"), bars = r.get("bars");
        md.append("# llava4j demo: LLaVA from nothing on ShapesWorld (").append(r.get("settings").asText())
                .append(", seed ").append(r.get("seed").asLong()).append(")\n\n");
        md.append("Trained here, in ").append(String.format(Locale.ROOT, "%.1f", r.get("phases").get("total").asDouble() / 60))
                .append(" minutes: a ShapesWorld of ").append(world.train.size()).append(" training images and ").append(world.scenes("test").size())
                .append(" each of validation, test, novel and validation-novel images (").append(r.path("image_size").asInt()).append("x").append(r.path("image_size").asInt())
                .append(", ").append(r.path("image_tokens").asInt()).append(" image tokens); a tiny LLaMA pre-trained on the world's text and a tiny "
                        + "CLIP vision tower pre-trained contrastively on its image–caption pairs — each batch holds every image beside a twin "
                        + "that differs in one attribute of one shape (a hard negative), and each shape's cell of patch tokens is also "
                        + "matched against the phrase naming it (\"left : small red circle\", a region–phrase term as in RegionCLIP / GLIP) "
                        + "and against its kind, colour and size words (region–word terms) — "
                        + "(both in `models/` as HF folders; the LLM's text also holds scenes as nine grid words, one per cell, e.g. "
                        + "\"empty left_small_red_circle empty …\", where the image tokens go, so that the projector can speak to the frozen "
                        + "LLM one word per image token); LLaVA's stage 1 "
                        + "(`--tune_mm_mlp_adapter True`, only the projector trains) and stage 2 (projector + LLM; the LLM at a "
                        + "lower learning rate than the projector, `--mm_projector_lr`, so that it keeps what it learnt), run by "
                        + "`llava4j train`'s code; an ablation of stage 1 with the LLM unfrozen and at 10x the learning rate.\n\n");
        md.append("## What freezing the LLM bought here\n\n");
        md.append("| stage 1 run | trainable params | optimizer state | step time (s) | peak RSS (MB) | text ppl after | caption accuracy | final loss | loss step spread | diverged |\n");
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        stage1.forEach((name, x) -> md.append("| ").append(name).append(" | ").append(String.format("%,d", x.trainable())).append(" | ")
                .append(String.format(Locale.ROOT, "%.1f KiB", x.optimizerBytes() / 1024.0)).append(" | ").append(f(x.stepS())).append(" | ")
                .append(f(x.peakRssMb())).append(" | ").append(f(x.pplAfter())).append(" | ").append(f(x.captionAcc())).append(" | ")
                .append(f(x.losses().get(x.losses().size() - 1))).append(" | ").append(f(x.spread())).append(" | ")
                .append(x.diverged() ? "yes" : "no").append(" |\n"));
        md.append("\nText perplexity of the LLM on held-out world text: before stage 1 ").append(f(ppl.get("before").asDouble()))
                .append("; after frozen stage 1 ").append(f(ppl.get("after_stage1").asDouble()))
                .append(ppl.get("bit_identical_after_frozen_stage1").asBoolean() ? " (bit for bit the same)" : " (NOT identical)")
                .append("; after unfrozen stage 1 ").append(f(ppl.get("after_stage1_unfrozen").asDouble()))
                .append(" (at 10x lr: frozen ").append(f(ppl.get("after_stage1_lr10x").asDouble()))
                .append(", unfrozen ").append(f(ppl.get("after_stage1_unfrozen_lr10x").asDouble())).append(").\n\n");
        Demo.StageResult fr = stage1.get("stage1"), un = stage1.get("stage1_unfrozen");
        md.append("- **Compute**: a frozen stage-1 step took ").append(f(fr.stepS() / un.stepS()))
                .append("x an unfrozen one, and the optimizer holds ").append(f((double) fr.optimizerBytes() / Math.max(1, un.optimizerBytes())))
                .append("x the state (only the projector's moments). The backward pass still runs through the whole LLM to reach the projector, "
                        + "so the step saves less than the parameter ratio suggests. At this size peak RSS is dominated by the JVM and libtorch, not the weights")
                .append(fr.peakRssMb() > un.peakRssMb()
                        ? String.format(Locale.ROOT, ", and it does not compare fairly here: the frozen run, first after the pre-training, peaked at %.0f MB "
                                + "against %.0f MB unfrozen, most likely because each run's peak is reset to the process's memory when it begins "
                                + "and that is highest right after the pre-training. "
                                + "The optimizer state is the memory freezing saves.\n", fr.peakRssMb(), un.peakRssMb())
                        : ".\n");
        md.append("- **Language knowledge**: frozen, the LLM's text perplexity cannot move; unfrozen it went from ")
                .append(f(ppl.get("before").asDouble())).append(" to ").append(f(ppl.get("after_stage1_unfrozen").asDouble()))
                .append(" (10x lr: ").append(f(ppl.get("after_stage1_unfrozen_lr10x").asDouble())).append(").\n");
        Demo.StageResult fr10 = stage1.get("stage1_lr10x"), un10 = stage1.get("stage1_unfrozen_lr10x");
        md.append("- **Stability**: at 10x the learning rate the frozen run's loss-step spread was ").append(f(fr10.spread()))
                .append(" (final loss ").append(f(fr10.losses().get(fr10.losses().size() - 1))).append(fr10.diverged() ? ", diverged" : "")
                .append(") and the unfrozen run's ").append(f(un10.spread())).append(" (final loss ")
                .append(f(un10.losses().get(un10.losses().size() - 1))).append(un10.diverged() ? ", diverged" : "")
                .append("); the frozen LLM's perplexity stayed ").append(f(ppl.get("after_stage1_lr10x").asDouble()))
                .append(", the unfrozen one's went to ").append(f(ppl.get("after_stage1_unfrozen_lr10x").asDouble())).append(".\n");
        md.append("- **Captions**: caption accuracy after stage 1 was ").append(f(fr.captionAcc())).append(" frozen and ")
                .append(f(un.captionAcc())).append(" unfrozen, against ").append(f(s1.get("caption_baseline").asDouble()))
                .append(" for the best constant caption").append(fr.captionAcc() >= 2 * s1.get("caption_baseline").asDouble()
                        ? String.format(Locale.ROOT, " (%.1fx): the projector alone learned to make the frozen LLM describe the image, "
                                + "in the words the LLM learned in pre-training for a grid of cells. ", fr.captionAcc() / s1.get("caption_baseline").asDouble())
                        + (un.captionAcc() > fr.captionAcc()
                        ? String.format(Locale.ROOT, "Letting the LLM train gained %.2f of caption accuracy and cost its language knowledge (above).",
                                un.captionAcc() - fr.captionAcc())
                        : "Letting the LLM train gained no caption accuracy and cost its language knowledge (above).")
                        : un.captionAcc() >= 2 * s1.get("caption_baseline").asDouble()
                        ? ": the features carry the scene (the unfrozen LLM learned to caption it), but in this run's budget the projector "
                        + "alone did not learn to make the frozen LLM say it; here freezing cost caption accuracy."
                        : ": in this run's budget neither variant learned to read the image well enough to beat a constant caption clearly, "
                        + "so this run shows the cost and the stability side of freezing, not an accuracy side.").append("\n\n");
        JsonNode vp = r.get("vision_probe");
        if (vp != null && vp.has("pretrained")) {
            JsonNode a = vp.get("pretrained"), b = vp.get("random_init");
            md.append("- **What the vision tower sees**: a linear probe of the tower's select-layer patch features (the projector's input) "
                    + "reads a held-out column's kind / colour / size with accuracy ");
            for (String k : VisionProbe.ATTRIBUTES) md.append(f(a.get(k).asDouble())).append(k.equals("size") ? "" : " / ");
            md.append(" after contrastive pre-training (");
            for (String k : VisionProbe.ATTRIBUTES) md.append(f(b.get(k).asDouble())).append(k.equals("size") ? "" : " / ");
            md.append(" from the randomly initialised tower; always answering the most frequent value: ");
            for (String k : VisionProbe.ATTRIBUTES) md.append(f(a.get(k + "_majority").asDouble())).append(k.equals("size") ? "" : " / ");
            md.append("); a single patch token's feature names its own column (left / middle / right) with accuracy ")
                    .append(f(a.get("token_column").asDouble())).append(" (most frequent column: ").append(f(a.get("token_column_majority").asDouble()))
                    .append("), which the LLM needs to say where a shape is. What the tower does not encode, neither stage can learn to say.\n\n");
        }
        JsonNode lg = r.get("llm_from_grid_words");
        if (lg != null) {
            md.append("- **What the LLM can read**: given each held-out scene's true grid words where the image tokens go (what a "
                    + "perfect projector could hand it), the pre-trained LLM alone captions with attribute accuracy ")
                    .append(f(lg.get("caption").asDouble())).append(" and answers VQA with exact match ").append(f(lg.get("vqa").asDouble()))
                    .append(" (");
            lg.properties().forEach(e -> {
                if (e.getKey().startsWith("vqa_")) md.append(e.getKey().substring(4)).append(" ").append(f(e.getValue().asDouble())).append("; ");
            });
            md.append("). This caps what stage 1 (LLM frozen) can reach whatever the projector learns; where it is low, the LLM "
                    + "has not learned in pre-training to fetch a described shape's attributes from its context, and that, as much as "
                    + "the vision tower, is what limits captions and answers.\n\n");
        }
        for (String[] part : new String[][]{{"novel", "novel"}, {"val_novel", "validation-novel"}}) {
            JsonNode ln = r.get("llm_from_grid_words_" + part[0]), pn = vp == null ? null : vp.get("pretrained_" + part[0] + "_kind_colour");
            if (ln == null && pn == null) continue;
            md.append("- **Where novel combinations are lost** (").append(part[1]).append(" scenes): ");
            if (pn != null) {
                md.append("the probe fitted on training images reads the kind / colour / size of shapes in a novel (kind, colour) pair with accuracy ");
                for (String k : VisionProbe.ATTRIBUTES) md.append(f(pn.get(k).asDouble())).append(k.equals("size") ? "" : " / ");
                md.append(" (the tower's side); ");
            }
            if (ln != null)
                md.append("the LLM alone, given these scenes' true grid words, answers their questions with exact match ")
                        .append(f(ln.get("vqa").asDouble())).append(" (the LLM's side); stage 2 through the image: ")
                        .append(f(s2.get("vqa_accuracy_" + part[0]).asDouble())).append(".");
            md.append("\n\n");
        }
        md.append("## Bars\n\n");
        md.append("| bar | reached | numbers |\n|---|---|---|\n");
        md.append("| stage2.vqa_accuracy >= 0.85 | ").append(yes(bars, "stage2_vqa_accuracy_ge_0_85")).append(" | ")
                .append(f(s2.get("vqa_accuracy").asDouble())).append(" |\n");
        md.append("| stage2.vqa_accuracy_novel >= 0.75 (goal) | ").append(yes(bars, "stage2_novel_vqa_accuracy_ge_0_75")).append(" | ")
                .append(f(s2.get("vqa_accuracy_novel").asDouble())).append(" |\n");
        md.append("| every question type above its blind baselines | ").append(yes(bars, "every_question_type_above_its_blind_baselines"))
                .append(" | below |\n");
        md.append("| overlap counts all 0 | ").append(yes(bars, "overlap_counts_all_zero")).append(" | below |\n");
        md.append("| stage1.caption_accuracy >= 2 x caption_baseline | ").append(yes(bars, "stage1_caption_accuracy_ge_2x_baseline")).append(" | ")
                .append(f(s1.get("caption_accuracy").asDouble())).append(" vs baseline ").append(f(s1.get("caption_baseline").asDouble()))
                .append(" (best constant caption: \"").append(s1.get("caption_baseline_text").asText()).append("\") |\n");
        md.append("| text_ppl.after_stage1 == text_ppl.before bit for bit | ").append(yes(bars, "text_ppl_after_stage1_equal_bit_for_bit")).append(" | ")
                .append(f(ppl.get("before").asDouble())).append(" |\n");
        md.append("| unfrozen ablation at least doubles the perplexity | ").append(yes(bars, "unfrozen_ppl_at_least_doubles")).append(" | ")
                .append(f(ppl.get("after_stage1_unfrozen").asDouble())).append(" |\n\n");
        md.append(heldOut(r));
        md.append("Stage 2 VQA exact match by question type: ");
        s2.get("vqa_accuracy_by_type").properties().forEach(e -> md.append(e.getKey()).append(" ").append(f(e.getValue().asDouble())).append("; "));
        md.append("\n\nCaption accuracy: each object of the scene is paired with the caption's object at the same position and scores "
                + "1/3 per agreeing attribute (kind, colour, size; 0 when the caption names nothing at its position); divided by the larger object count.\n\n");
        md.append("## Samples (held-out images)\n\n");
        for (int i = 0; i < n; i++) {
            md.append("![test ").append(i).append("](samples/").append(String.format("test_%02d.png", i)).append(")\n\n");
            md.append("- truth: ").append(ShapesWorld.caption(world.scenes("test").get(i), 0)).append("\n");
            md.append("- stage 1 (frozen) caption: ").append(fr.captions().get(i)).append("\n");
            md.append("- stage 1 (unfrozen) caption: ").append(un.captions().get(i)).append("\n");
            List<Qa> qas = world.qa("test").get(i);
            for (int k = 0; k < qas.size(); k++)
                md.append("- Q: ").append(qas.get(k).question()).append(" A: ").append(answers.get(i).get(k))
                        .append(" (truth: ").append(qas.get(k).answer()).append(")\n");
            md.append("\n");
        }
        md.append("## Loss curves\n\n![stage 1](charts/stage1_loss.png)\n\n![stage 2](charts/stage2_loss.png)\n\n![pre-training](charts/pretrain_loss.png)\n\n");
        JsonNode m = r.get("machine");
        md.append("## Phase times (s)\n\n").append("On ").append(m.get("cores").asInt()).append(" cores (libtorch threads ")
                .append(m.get("torch_threads").asInt()).append("), 1-minute load average ").append(m.get("load_average_at_start").asDouble())
                .append(" at the start and ").append(m.get("load_average_at_end").asDouble())
                .append(" at the end")
                .append(m.has("openblas_kernels") ? ", OpenBLAS kernels " + m.get("openblas_kernels").asText() + ", native bf16 GEMMs " + m.path("bf16_gemm").asText() : "")
                .append(": a load above the core count means other processes shared the cores and the times are pessimistic. "
                        + "The LLM and the vision tower pre-train side by side, one thread each: pretrain_llm and pretrain_clip overlap, "
                        + "pretraining_side_by_side is the pair's wall time, and the total counts it once.\n\n");
        r.get("phases").properties().forEach(e -> md.append("- ").append(e.getKey()).append(": ")
                .append(String.format(Locale.ROOT, "%.1f", e.getValue().asDouble())).append("\n"));
        md.append("\nThe tokenizer is word-level (a tokenizer.json WordLevel model over the world's closed vocabulary), not a trained BPE.\n");
        return md.toString();
    }

    /** The held-out splits, the blind baselines per question type and the overlap counts, as markdown. */
    static String heldOut(JsonNode r) {
        StringBuilder md = new StringBuilder();
        JsonNode s2 = r.get("stage2"), s1 = r.get("stage1"), blind = r.get("blind"), margin = s2.get("margin_over_blind_by_type");
        md.append("## Held out by content\n\n");
        md.append("Validation, test, novel and validation-novel images hold object lists (kind, colour, size and position of each shape) "
                + "that no training corpus holds: not the training images, the tower's captions and twins, the LLM's pre-training documents "
                + "and chats, stage 1 or stage 2. Novel and validation-novel images each hold a shape whose (kind, colour) or (kind, "
                + "position) pair never occurs together in training. Settings are chosen on validation and validation-novel; test and "
                + "novel are reported.\n\n");
        md.append("| split | stage-2 VQA | frozen stage-1 captions |\n|---|---:|---:|\n");
        md.append("| validation | ").append(f(s2.get("vqa_accuracy_val").asDouble())).append(" | ").append(f(s1.get("caption_accuracy_val").asDouble())).append(" |\n");
        md.append("| test | ").append(f(s2.get("vqa_accuracy").asDouble())).append(" | ").append(f(s1.get("caption_accuracy").asDouble())).append(" |\n");
        md.append("| validation-novel combinations | ").append(f(s2.get("vqa_accuracy_val_novel").asDouble())).append(" | – |\n");
        md.append("| novel combinations | ").append(f(s2.get("vqa_accuracy_novel").asDouble())).append(" | – |\n\n");
        md.append("Blind baselines on the test split, per question type (what a model answers without looking): the most frequent "
                + "stage-2 training answer, the stage-2 model shown a mean-grey image, its LLM with no image tokens. The margin is "
                + "stage 2's accuracy minus the best of the three.\n\n");
        md.append("| question type | stage 2 | most frequent | blank image | no image | margin |\n|---|---:|---:|---:|---:|---|\n");
        s2.get("vqa_accuracy_by_type").properties().forEach(e -> {
            JsonNode b = blind.path(e.getKey());
            double m = margin.path(e.getKey()).asDouble();
            md.append("| ").append(e.getKey()).append(" | ").append(f(e.getValue().asDouble())).append(" | ")
                    .append(f(b.path("most_frequent").asDouble())).append(" | ").append(f(b.path("blank_image").asDouble())).append(" | ")
                    .append(f(b.path("no_image").asDouble())).append(" | ")
                    .append(m > 0 ? "beats it by " + f(m) : "**does not beat it** (" + f(m) + ")").append(" |\n");
        });
        md.append("\nFrozen stage-1 captions on test: ").append(f(s1.get("caption_accuracy").asDouble()))
                .append(" against ").append(f(s1.get("caption_baseline").asDouble()))
                .append(" for the best constant caption chosen on the training scenes (\"").append(s1.get("caption_baseline_text").asText())
                .append("\").\n\n");
        md.append("Overlap with training, counted from the files in `world/` (`Overlap`; 0 means none):\n\n| count | value |\n|---|---:|\n");
        r.get("overlap").properties().forEach(e -> md.append("| ").append(e.getKey()).append(" | ").append(e.getValue().asLong()).append(" |\n"));
        md.append("\n");
        return md.toString();
    }

    private static String yes(JsonNode bars, String key) {
        return bars.get(key).asBoolean() ? "yes" : "**no**";
    }
}
