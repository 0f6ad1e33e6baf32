package io.llava4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code llava4j train --plan plan.yaml} (or .json): training stages run in order, each one a {@code llava4j train}
 * call — {@link #flags} writes a stage as the flags of that call — plus its per-module {@link Trainability}. Each
 * stage reads the previous one's output: the base model with the trained projector after a projector-only stage
 * (LLaVA's {@code --pretrain_mm_mlp_adapter}), the written model otherwise. The whole plan is checked when it is read;
 * an error names the file, the stage and the key.
 *
 * <pre>
 * model_name_or_path: base            # the first stage's input
 * vision_tower: clip                  # optional, given to every stage (as LLaVA's scripts do)
 * output_dir: runs/plan               # stage NAME writes runs/plan/NAME
 * args: {per_device_train_batch_size: 16}   # flags of llava4j train for every stage (no leading --)
 * stages:
 *   - name: pretrain
 *     data_path: blip_558k.json
 *     image_folder: images
 *     template: plain                 # --version
 *     epochs: 1                       # or max_steps: N
 *     vision: frozen                  # frozen | full | layers k..N
 *     projector: full                 # frozen | full
 *     llm: frozen                     # frozen | full | layers k..N | {lora: {r, alpha, dropout, targets}}
 *     lr: {projector: 1e-3}           # vision / projector / llm
 *     unfreeze: {module: llm, every: 100, add: 2, warmup: 20, until: 0}   # optional, progressive
 *     args: {warmup_ratio: 0.03}      # flags for this stage only
 * </pre>
 */
public record TrainPlan(Path file, Path modelNameOrPath, Path visionTower, Path outputDir, Map<String, String> args, List<Stage> stages) {

    /** One stage; {@code lr} by module, {@code args} the stage's own flags (before the plan's are merged in). */
    public record Stage(String name, Path dataPath, Path imageFolder, String template, Integer maxSteps, Double epochs,
                        Trainability trainability, Map<String, Double> lr, Map<String, String> args) {}

    private static final Set<String> TOP_KEYS = Set.of("model_name_or_path", "vision_tower", "output_dir", "args", "stages");
    private static final Set<String> STAGE_KEYS = Set.of("name", "data_path", "image_folder", "template", "max_steps", "epochs",
            "vision", "projector", "llm", "lr", "unfreeze", "args");
    /** Flags a plan sets through its own keys; in {@code args} they are refused, naming the key to use. */
    private static final Map<String, String> OWNED = ownedFlags();
    private static final Pattern LAYERS = Pattern.compile("layers\\s+(\\d+)\\s*\\.\\.\\s*(N|\\d+)");
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_.-]+");

    private static Map<String, String> ownedFlags() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("model_name_or_path", "model_name_or_path (the first stage's input; later stages read the previous output)");
        m.put("vision_tower", "vision_tower at the top of the plan");
        m.put("pretrain_mm_mlp_adapter", "a projector-only stage before this one");
        m.put("output_dir", "output_dir at the top of the plan");
        m.put("data_path", "the stage's data_path");
        m.put("image_folder", "the stage's image_folder");
        m.put("version", "the stage's template");
        m.put("max_steps", "the stage's max_steps");
        m.put("num_train_epochs", "the stage's epochs");
        for (String f : List.of("tune_mm_mlp_adapter", "freeze_backbone", "freeze_mm_mlp_adapter", "unfreeze_mm_vision_tower"))
            m.put(f, "the stage's vision / projector / llm");
        m.put("learning_rate", "the stage's lr.llm");
        m.put("mm_projector_lr", "the stage's lr.projector");
        m.put("mm_vision_tower_lr", "the stage's lr.vision");
        for (String f : List.of("lora_enable", "lora_r", "lora_alpha", "lora_dropout")) m.put(f, "the stage's llm: {lora: {...}}");
        m.put("dry_run", "--dry_run True on the command line");
        m.put("plan", "one plan per run");
        return m;
    }

    /** Reads and checks a plan (YAML by default; JSON for a .json file). */
    public static TrainPlan load(Path file) {
        JsonNode root;
        try {
            String text = Files.readString(file);
            root = (file.toString().endsWith(".json") ? new ObjectMapper() : new YAMLMapper()).readTree(text);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read the plan: " + e.getMessage().lines().findFirst().orElse(""));
        }
        String where = file.toString();
        if (root == null || !root.isObject()) throw new IllegalArgumentException(where + ": a plan is a mapping with model_name_or_path, output_dir and stages");
        keys(root, TOP_KEYS, where);
        Path model = path(root, "model_name_or_path", where, true);
        Path vision = path(root, "vision_tower", where, false);
        Path out = path(root, "output_dir", where, true);
        Map<String, String> args = args(root.get("args"), where + ": args");
        JsonNode st = root.get("stages");
        if (st == null || !st.isArray() || st.isEmpty()) throw new IllegalArgumentException(where + ": stages: a list of at least one stage");
        List<Stage> stages = new ArrayList<>();
        Set<String> names = new java.util.HashSet<>();
        for (int i = 0; i < st.size(); i++) {
            JsonNode s = st.get(i);
            String at = where + ": stage " + (i + 1);
            if (!s.isObject()) throw new IllegalArgumentException(at + ": a stage is a mapping with name, data_path, ...");
            String name = text(s, "name", at, true);
            if (!NAME.matcher(name).matches()) throw new IllegalArgumentException(at + ": name: '" + name + "' (letters, digits, _ . - only: it names the stage's folder)");
            at = where + ": stage '" + name + "'";
            if (!names.add(name)) throw new IllegalArgumentException(at + ": name: used by an earlier stage too");
            stages.add(stage(s, name, at));
        }
        return new TrainPlan(file, model, vision, out, args, List.copyOf(stages));
    }

    private static Stage stage(JsonNode s, String name, String at) {
        keys(s, STAGE_KEYS, at);
        Path data = path(s, "data_path", at, true);
        Path images = path(s, "image_folder", at, false);
        String template = text(s, "template", at, false);
        Integer maxSteps = null;
        Double epochs = null;
        if (s.has("max_steps")) {
            if (!s.get("max_steps").canConvertToInt() || !s.get("max_steps").isIntegralNumber() || s.get("max_steps").asInt() < 1)
                throw new IllegalArgumentException(at + ": max_steps: a whole number >= 1, got " + s.get("max_steps"));
            maxSteps = s.get("max_steps").asInt();
        }
        if (s.has("epochs")) {
            epochs = number(s.get("epochs"), at + ": epochs");
            if (epochs <= 0) throw new IllegalArgumentException(at + ": epochs: a number > 0, got " + s.get("epochs"));
        }
        if ((maxSteps == null) == (epochs == null))
            throw new IllegalArgumentException(at + ": give exactly one of max_steps and epochs");
        Trainability.Module vision = module(s.get("vision"), "vision", Trainability.Module.FROZEN, at);
        Trainability.Module projector = module(s.get("projector"), "projector", Trainability.Module.FULL, at);
        Trainability.Module llm = module(s.get("llm"), "llm", Trainability.Module.FULL, at);
        Trainability.Unfreeze unfreeze = unfreeze(s.get("unfreeze"), vision, llm, at);
        Trainability t = new Trainability(vision, projector, llm, unfreeze);
        if (!vision.trains() && !projector.trains() && !llm.trains())
            throw new IllegalArgumentException(at + ": vision, projector and llm are all frozen: nothing to train");
        Map<String, Double> lr = new LinkedHashMap<>();
        JsonNode lrs = s.get("lr");
        if (lrs != null) {
            if (!lrs.isObject()) throw new IllegalArgumentException(at + ": lr: a mapping of vision / projector / llm to a learning rate");
            keys(lrs, Set.of("vision", "projector", "llm"), at + ": lr");
            for (Iterator<Map.Entry<String, JsonNode>> it = lrs.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                double v = number(e.getValue(), at + ": lr." + e.getKey());
                if (v < 0) throw new IllegalArgumentException(at + ": lr." + e.getKey() + ": a number >= 0, got " + e.getValue());
                Trainability.Module m = e.getKey().equals("vision") ? vision : e.getKey().equals("projector") ? projector : llm;
                if (!m.trains()) throw new IllegalArgumentException(at + ": lr." + e.getKey() + ": the " + e.getKey() + " is frozen in this stage");
                lr.put(e.getKey(), v);
            }
        }
        return new Stage(name, data, images, template, maxSteps, epochs, t, lr, args(s.get("args"), at + ": args"));
    }

    private static Trainability.Module module(JsonNode n, String key, Trainability.Module dflt, String at) {
        if (n == null) return dflt;
        String what = key.equals("projector") ? "frozen or full" : key.equals("vision") ? "frozen, full or layers k..N"
                : "frozen, full, layers k..N or {lora: {r, alpha, dropout, targets}}";
        if (n.isObject() && key.equals("llm")) {
            keys(n, Set.of("lora"), at + ": llm");
            JsonNode l = n.get("lora");
            if (l == null || !l.isObject()) throw new IllegalArgumentException(at + ": llm: lora: a mapping with r, alpha, dropout, targets");
            keys(l, Set.of("r", "alpha", "dropout", "targets"), at + ": llm.lora");
            if (!l.path("r").isIntegralNumber() || l.get("r").asInt() < 1) throw new IllegalArgumentException(at + ": llm.lora.r: a whole number >= 1");
            int r = l.get("r").asInt();
            double alpha = l.has("alpha") ? number(l.get("alpha"), at + ": llm.lora.alpha") : r;
            double dropout = l.has("dropout") ? number(l.get("dropout"), at + ": llm.lora.dropout") : 0.0;
            if (alpha <= 0) throw new IllegalArgumentException(at + ": llm.lora.alpha: must be > 0, got " + alpha);
            if (dropout < 0 || dropout >= 1) throw new IllegalArgumentException(at + ": llm.lora.dropout: must be in [0, 1), got " + dropout);
            List<String> targets = new ArrayList<>();
            if (l.has("targets")) {
                if (!l.get("targets").isArray() || l.get("targets").isEmpty()) throw new IllegalArgumentException(at + ": llm.lora.targets: a list of module names");
                for (JsonNode t : l.get("targets")) {
                    if (!Trainability.Lora.LLAMA_TARGETS.contains(t.asText()))
                        throw new IllegalArgumentException(at + ": llm.lora.targets: '" + t.asText() + "' is not one of " + Trainability.Lora.LLAMA_TARGETS);
                    targets.add(t.asText());
                }
            } else targets.addAll(Trainability.Lora.LLAMA_TARGETS);
            return new Trainability.Module(Trainability.Kind.LORA, 0, 0, new Trainability.Lora(r, alpha, dropout, List.copyOf(targets)));
        }
        String v = n.isTextual() ? n.asText().trim() : null;
        if ("frozen".equals(v)) return Trainability.Module.FROZEN;
        if ("full".equals(v)) return Trainability.Module.FULL;
        Matcher m = v == null || key.equals("projector") ? null : LAYERS.matcher(v);
        if (m != null && m.matches()) {
            int from = Integer.parseInt(m.group(1));
            int to = m.group(2).equals("N") ? Trainability.TOP : Integer.parseInt(m.group(2));
            if (to < from) throw new IllegalArgumentException(at + ": " + key + ": '" + v + "': the range is empty");
            return Trainability.Module.layers(from, to);
        }
        throw new IllegalArgumentException(at + ": " + key + ": " + n + " is not " + what);
    }

    private static Trainability.Unfreeze unfreeze(JsonNode n, Trainability.Module vision, Trainability.Module llm, String at) {
        if (n == null) return null;
        String w = at + ": unfreeze";
        if (!n.isObject()) throw new IllegalArgumentException(w + ": a mapping with module, every, add, warmup, until");
        keys(n, Set.of("module", "every", "add", "warmup", "until"), w);
        String module = n.has("module") ? n.get("module").asText()
                : vision.kind() == Trainability.Kind.LAYERS && llm.kind() != Trainability.Kind.LAYERS ? "vision" : "llm";
        if (!module.equals("llm") && !module.equals("vision"))
            throw new IllegalArgumentException(w + ".module: llm or vision, got '" + module + "'");
        Trainability.Module m = module.equals("llm") ? llm : vision;
        if (m.kind() != Trainability.Kind.LAYERS || m.to() != Trainability.TOP)
            throw new IllegalArgumentException(w + ": the " + module + " must start as 'layers k..N' to unfreeze top-down, is " + m);
        int every = whole(n, "every", -1, 1, w), add = whole(n, "add", 1, 1, w), warmup = whole(n, "warmup", 0, 0, w),
                until = whole(n, "until", 0, 0, w);
        if (until >= m.from())
            throw new IllegalArgumentException(w + ".until: " + until + " is not below the " + module + "'s lowest trainable layer " + m.from());
        return new Trainability.Unfreeze(module, every, add, warmup, until);
    }

    private static int whole(JsonNode n, String key, int dflt, int min, String at) {
        if (!n.has(key)) {
            if (dflt < 0) throw new IllegalArgumentException(at + "." + key + ": required");
            return dflt;
        }
        JsonNode v = n.get(key);
        if (!v.isIntegralNumber() || v.asInt() < min) throw new IllegalArgumentException(at + "." + key + ": a whole number >= " + min + ", got " + v);
        return v.asInt();
    }

    /** A number; also a string that is one (YAML 1.1 reads 1e-3, without a dot, as a string). */
    private static double number(JsonNode n, String at) {
        if (n.isNumber()) return n.asDouble();
        if (n.isTextual())
            try {
                return Double.parseDouble(n.asText().trim());
            } catch (NumberFormatException ignored) { /* below */ }
        throw new IllegalArgumentException(at + ": a number, got " + n);
    }

    private static void keys(JsonNode n, Set<String> allowed, String at) {
        for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!allowed.contains(k))
                throw new IllegalArgumentException(at + ": unknown key '" + k + "' (known: " + String.join(", ", new java.util.TreeSet<>(allowed)) + ")");
        }
    }

    private static String text(JsonNode n, String key, String at, boolean required) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            if (required) throw new IllegalArgumentException(at + ": " + key + ": required");
            return null;
        }
        if (!v.isValueNode() || v.asText().isBlank()) throw new IllegalArgumentException(at + ": " + key + ": a non-empty string, got " + v);
        return v.asText();
    }

    private static Path path(JsonNode n, String key, String at, boolean required) {
        String s = text(n, key, at, required);
        return s == null ? null : Path.of(s);
    }

    /** An {@code args} mapping: flag name (no leading --) → value; booleans written True / False as in LLaVA's scripts. */
    private static Map<String, String> args(JsonNode n, String at) {
        Map<String, String> m = new LinkedHashMap<>();
        if (n == null) return m;
        if (!n.isObject()) throw new IllegalArgumentException(at + ": a mapping of llava4j train flags (without --) to values");
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String k = e.getKey().startsWith("--") ? e.getKey().substring(2) : e.getKey();
            if (OWNED.containsKey(k)) throw new IllegalArgumentException(at + "." + k + ": set by " + OWNED.get(k) + ", not by args");
            JsonNode v = e.getValue();
            if (!v.isValueNode() || v.isNull()) throw new IllegalArgumentException(at + "." + k + ": a single value, got " + v);
            m.put(k, v.isBoolean() ? (v.asBoolean() ? "True" : "False") : v.asText());
        }
        return m;
    }

    /** Where stage {@code i} writes. */
    public Path outputOf(int i) {
        return outputDir.resolve(stages.get(i).name());
    }

    /** The model stage {@code i} reads: the base for the first stage and after projector-only stages, else the previous output. */
    public Path modelOf(int i) {
        if (i == 0) return modelNameOrPath;
        return stages.get(i - 1).trainability().onlyProjector() ? modelOf(i - 1) : outputOf(i - 1);
    }

    /** The stage-1 projector stage {@code i} starts from (LLaVA's --pretrain_mm_mlp_adapter), or null. */
    public Path adapterOf(int i) {
        return i > 0 && stages.get(i - 1).trainability().onlyProjector() ? outputOf(i - 1).resolve(ProjectorFiles.FILE) : null;
    }

    /**
     * Stage {@code i} as the flags of one {@code llava4j train} call: inputs, data, length, LLaVA's freezing flags where
     * they say the same (a projector-only stage is {@code --tune_mm_mlp_adapter True}, so it writes LLaVA's stage-1
     * files), learning rates, LoRA, then the plan's and the stage's args.
     */
    public List<String> flags(int i) {
        Stage s = stages.get(i);
        Trainability t = s.trainability();
        List<String> f = new ArrayList<>();
        add(f, "model_name_or_path", modelOf(i));
        add(f, "vision_tower", visionTower);
        add(f, "pretrain_mm_mlp_adapter", adapterOf(i));
        add(f, "data_path", s.dataPath());
        add(f, "image_folder", s.imageFolder());
        add(f, "version", s.template());
        add(f, "output_dir", outputOf(i));
        if (s.maxSteps() != null) add(f, "max_steps", s.maxSteps());
        else add(f, "num_train_epochs", s.epochs());
        if (t.onlyProjector()) add(f, "tune_mm_mlp_adapter", "True");
        if (t.vision().trains()) add(f, "unfreeze_mm_vision_tower", "True");
        if (!t.projector().trains()) add(f, "freeze_mm_mlp_adapter", "True");
        add(f, "learning_rate", s.lr().get("llm"));
        add(f, "mm_projector_lr", s.lr().get("projector"));
        add(f, "mm_vision_tower_lr", s.lr().get("vision"));
        if (t.llm().kind() == Trainability.Kind.LORA) {
            Trainability.Lora l = t.llm().lora();
            add(f, "lora_enable", "True");
            add(f, "lora_r", l.r());
            add(f, "lora_alpha", l.alpha());
            add(f, "lora_dropout", l.dropout());
        }
        Map<String, String> merged = new LinkedHashMap<>(args);
        merged.putAll(s.args());
        merged.forEach((k, v) -> add(f, k, v));
        return f;
    }

    private static void add(List<String> f, String flag, Object value) {
        if (value == null) return;
        f.add("--" + flag);
        f.add(value instanceof Double d && d == Math.rint(d) && !Double.isInfinite(d) && Math.abs(d) < 1e15 ? String.valueOf(d.longValue())
                : String.valueOf(value));
    }
}
