package io.llava4j.train;

import java.util.List;

/**
 * transformers' learning-rate schedules as a factor of the base learning rate at optimizer step {@code step}
 * (0-based: the factor used by the step-th update).
 */
public record LrSchedule(String type, int warmupSteps, int totalSteps) {
    public static final List<String> TYPES = List.of("constant", "constant_with_warmup", "linear", "cosine");

    public LrSchedule {
        if (!TYPES.contains(type))
            throw new IllegalArgumentException("--lr_scheduler_type '" + type + "' is not one of " + TYPES);
    }

    /** HF: warmup_steps if > 0, else ceil(warmup_ratio × total). */
    public static int warmupSteps(int warmupSteps, double warmupRatio, int totalSteps) {
        return warmupSteps > 0 ? warmupSteps : (int) Math.ceil(warmupRatio * totalSteps);
    }

    public double factor(int step) {
        if (type.equals("constant")) return 1.0;
        if (step < warmupSteps) return (double) step / Math.max(1, warmupSteps);
        return switch (type) {
            case "constant_with_warmup" -> 1.0;
            case "linear" -> Math.max(0.0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
            default -> { // cosine, num_cycles 0.5
                double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
                yield Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress)));
            }
        };
    }
}
