package io.llava4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.data.LlavaDataset;
import io.llava4j.data.LlavaTokenizer;
import io.llava4j.io.JsonFiles;
import io.llava4j.data.LlavaDataset.Sample;
import io.llava4j.model.Checkpoints;
import io.llava4j.model.Llava;
import io.llava4j.train.Batches;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code llava4j score}: LLaVA's training loss of each sample of a data file, without training. */
@Command(name = "score", mixinStandardHelpOptions = true,
        description = "Mean cross entropy (LLaVA's loss) of a LLaVA JSON file under a model, per sample and token-weighted overall.")
public class ScoreCommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin DeviceOption device = new DeviceOption();
    @Option(names = "--model_name_or_path", required = true, description = "HF model folder") Path model;
    @Option(names = "--vision_tower", description = "CLIP folder (original LLaVA folders whose mm_vision_tower is not local)") Path visionTower;
    @Option(names = "--data_path", required = true, description = "LLaVA JSON (or JSONL) file") Path data;
    @Option(names = "--image_folder", description = "folder the records' image paths are relative to") Path imageFolder;
    @Option(names = "--version", defaultValue = "v1", description = "conversation template, a name of LLaVA's conv_templates (plain, v1, llava_llama_2, mistral_instruct, mpt, ...; default: ${DEFAULT-VALUE})") String version;
    @Option(names = "--image_aspect_ratio", description = "square or pad (default: the config's image_aspect_ratio, else square)") String aspect;
    @Option(names = "--model_max_length", defaultValue = "2048", description = "truncate samples to this many tokens (default: ${DEFAULT-VALUE})") int maxLength;
    @Option(names = "--per_device_eval_batch_size", defaultValue = "1", description = "samples per forward pass (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--output_json", required = true, description = "where to write the scores") Path output;
    @picocli.CommandLine.Mixin PrecisionOption precisionOption = new PrecisionOption();
    @Option(names = "--bits", defaultValue = "16", description = "4 or 8: the LLM's linear weights held quantized, as train --bits; 16 (default): none") int bits;
    @Option(names = "--quant_type", defaultValue = "nf4", description = "with --bits 4: nf4 (default) or fp4") String quantType;
    @Option(names = "--double_quant", defaultValue = "False", arity = "1", converter = TrainCommand.Bool.class, description = "with --bits 4: the blocks' scales in 8 bits") boolean doubleQuant;

    @Override
    public Integer call() throws Exception {
        device.apply();
        if (batch < 1) throw new IllegalArgumentException("--per_device_eval_batch_size must be >= 1, got " + batch);
        LlavaTokenizer tok = Batches.preflight(model, visionTower, null, maxLength); // before any weight is read
        io.llava4j.nn.Precision precision = precisionOption.precision();
        io.llava4j.nn.quant.QuantSpec quant = io.llava4j.nn.quant.QuantSpec.of(bits, quantType, doubleQuant);
        Llava m = Checkpoints.loadForInference(model, visionTower, precision, quant, true).model(); // weights used in place where the file holds them so
        Batches.Data opened = Batches.open(tok, model, m.config, data, imageFolder, version, aspect, maxLength);
        LlavaDataset ds = opened.dataset();
        io.llava4j.data.Collator collator = opened.collator();
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        ArrayNode samples = json.createArrayNode();
        double totalLoss = 0;
        long totalTokens = 0;
        Progress bar = new Progress("score", ds.size());
        for (int start = 0; start < ds.size(); start += batch) {
            List<Sample> chunk = new ArrayList<>();
            for (int i = start; i < Math.min(ds.size(), start + batch); i++) chunk.add(ds.get(i));
            for (Sample s : chunk) if (s.warning() != null) System.err.println("warning: " + s.id() + ": " + s.warning());
            try (PointerScope scope = new PointerScope(); NoGradGuard ng = new NoGradGuard();
                 io.llava4j.nn.Autocast ac = io.llava4j.nn.Autocast.enable(precision)) {
                Batches.Input in = Batches.input(chunk, collator, m.config.vision().imageSize());
                // the LM head only at supervised positions: no [B, L, vocab] logits
                Llava.SampleLosses losses = m.sampleLosses(in.pixels(), in.imageSizes(), in.inputIds(), in.labels(), in.attentionMask(), maxLength);
                for (int b = 0; b < chunk.size(); b++) {
                    double sum = losses.sums()[b];
                    long n = losses.counts()[b];
                    ObjectNode o = samples.addObject();
                    o.put("id", chunk.get(b).id());
                    if (n > 0) o.put("loss", sum / n); else o.putNull("loss");
                    o.put("supervised_tokens", n);
                    totalLoss += sum;
                    totalTokens += n;
                }
            }
            bar.update(Math.min(ds.size(), start + batch), String.format("loss %.4f", totalTokens == 0 ? 0 : totalLoss / totalTokens));
        }
        bar.done();
        if (totalTokens > 0) root.put("mean_loss", totalLoss / totalTokens); else root.putNull("mean_loss");
        root.put("supervised_tokens", totalTokens);
        root.set("samples", samples);
        JsonFiles.write(output, root);
        System.out.printf("mean_loss %s over %d supervised tokens, %d samples -> %s%n",
                root.get("mean_loss"), totalTokens, ds.size(), output);
        return 0;
    }
}
