package io.llava4j.cli;

import io.llava4j.config.LlavaConfig;
import io.llava4j.model.Checkpoints;
import io.llava4j.train.FreezeSchedule;
import io.llava4j.train.TrainArgs;
import io.llava4j.train.TrainPlan;
import io.llava4j.train.TrainReport;
import io.llava4j.train.Trainability;
import io.llava4j.train.Trainer;
import picocli.CommandLine;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code llava4j train --plan FILE}: every stage becomes the {@link TrainArgs} of one {@code llava4j train} call
 * (parsed by {@link TrainCommand}'s own parser) and runs through the same {@link Trainer}, with the stage's
 * {@link Trainability}. The whole plan is checked — flags, LoRA support, layer ranges against the model — before the
 * first stage starts.
 */
public final class PlanRun {
    private PlanRun() {}

    /** A checked stage: its flags as a CLI call, and the arguments they parse to. */
    public record Checked(TrainPlan.Stage stage, List<String> flags, TrainArgs args) {}

    /** Reads and checks a plan; every error names the file, the stage and the key. */
    public static List<Checked> check(Path file) {
        TrainPlan plan = TrainPlan.load(file);
        List<Checked> out = new ArrayList<>();
        CommandLine.Model.CommandSpec train = new CommandLine(new TrainCommand()).getCommandSpec();
        for (String k : plan.args().keySet()) checkArg(file + ": args." + k, k, train);
        for (int i = 0; i < plan.stages().size(); i++) {
            for (String k : plan.stages().get(i).args().keySet())
                checkArg(file + ": stage '" + plan.stages().get(i).name() + "': args." + k, k, train);
            TrainPlan.Stage s = plan.stages().get(i);
            String at = file + ": stage '" + s.name() + "'";
            List<String> flags = plan.flags(i);
            TrainArgs args;
            try {
                args = TrainCommand.parse(flags.toArray(new String[0]));
            } catch (CommandLine.UnmatchedArgumentException e) {
                if (s.trainability().llm().kind() == Trainability.Kind.LORA && e.getUnmatched().contains("--lora_enable"))
                    throw new IllegalArgumentException(at + ": llm: lora{...} is not yet available in this build of llava4j train");
                throw new IllegalArgumentException(at + ": args: " + e.getMessage().replace("'--", "'"));
            } catch (CommandLine.ParameterException | IllegalArgumentException e) {
                throw new IllegalArgumentException(at + ": " + e.getMessage());
            }
            if (s.trainability().llm().kind() == Trainability.Kind.LORA) { // the flags carry r, alpha, dropout; the targets come from the plan
                Trainability.Lora l = s.trainability().llm().lora();
                args = args.withLora(new io.llava4j.train.LoraSpec(l.r(), l.alpha(), l.dropout(), l.targets(),
                        args.lora() == null ? null : args.lora().init()));
            }
            if (!java.nio.file.Files.isRegularFile(s.dataPath())) throw new IllegalArgumentException(at + ": data_path: no file " + s.dataPath());
            if (s.imageFolder() != null && !java.nio.file.Files.isDirectory(s.imageFolder()))
                throw new IllegalArgumentException(at + ": image_folder: no folder " + s.imageFolder());
            try {
                io.llava4j.data.Conversation.Template.forTraining(args.version());
            } catch (RuntimeException e) {
                throw new IllegalArgumentException(at + ": template: " + e.getMessage());
            }
            out.add(new Checked(s, flags, args));
        }
        // layer ranges against the model: every stage reads the first one's architecture
        TrainArgs first = out.get(0).args();
        LlavaConfig c;
        try {
            c = LlavaConfig.load(first.modelNameOrPath(), first.visionTower(), first.projectorSpec());
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(file + ": model_name_or_path: " + e.getMessage());
        }
        for (Checked k : out)
            try {
                FreezeSchedule.check(k.stage().trainability(), FreezeSchedule.Depth.of(c));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(file + ": stage '" + k.stage().name() + "': " + e.getMessage());
            }
        return out;
    }

    /** A plan's {@code args} key must be a train flag; the data-parallel ones are not taken by plans yet. */
    private static void checkArg(String at, String key, CommandLine.Model.CommandSpec train) {
        if (train.findOption("--" + key) == null) throw new IllegalArgumentException(at + ": not a flag of llava4j train");
        if (key.startsWith("ddp_") || DistOptions.LAUNCHER_FLAGS.contains("--" + key))
            throw new IllegalArgumentException(at + ": plans run in one process; data-parallel plans are not available yet (run the stages as llava4j train calls)");
    }

    /** Runs the stages in order; with {@code dryRun}, prints every stage's schedule and bytes instead. */
    public static int run(Path file, boolean dryRun) throws Exception {
        if (System.getenv("WORLD_SIZE") != null && !System.getenv("WORLD_SIZE").equals("1"))
            throw new IllegalArgumentException("--plan in a data-parallel rank (WORLD_SIZE=" + System.getenv("WORLD_SIZE")
                    + "): plans run in one process; data-parallel plans are not available yet");
        List<Checked> stages = check(file);
        if (dryRun) {
            System.out.print(dryRun(stages));
            return 0;
        }
        for (int i = 0; i < stages.size(); i++) {
            Checked k = stages.get(i);
            System.out.printf("== stage %d/%d '%s': %s -> %s%n", i + 1, stages.size(), k.stage().name(), k.stage().trainability(),
                    k.args().outputDir());
            System.out.println("   as: llava4j train " + String.join(" ", k.flags()));
            new Trainer(k.args()).trainability(k.stage().trainability()).progress(new Progress(k.stage().name())).run();
        }
        return 0;
    }

    /** Every stage's trainable report and the steps where its trainability changes, on the first stage's model. */
    static String dryRun(List<Checked> stages) {
        TrainArgs first = stages.get(0).args();
        io.llava4j.engine.Engine.init();
        var model = Checkpoints.load(first.modelNameOrPath(), first.visionTower(), first.projectorSpec(), first.precision()).model();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < stages.size(); i++) {
            Checked k = stages.get(i);
            TrainPlan.Stage s = k.stage();
            FreezeSchedule sched = FreezeSchedule.of(model, s.trainability());
            sb.append(String.format("== stage %d/%d '%s' (%s): %s%n", i + 1, stages.size(), s.name(),
                    s.maxSteps() != null ? s.maxSteps() + " steps" : s.epochs() + " epochs", s.trainability()));
            sb.append("   as: llava4j train ").append(String.join(" ", k.flags())).append('\n');
            sb.append(new TrainReport(model, sched.at(0)).render());
            sb.append(TrainReport.renderSchedule(model, sched));
        }
        return sb.toString();
    }
}
