package io.llava4j.generate;

/**
 * How to pick each new token, as HF's {@code generate} does for LLaVA: greedy (argmax) when {@code temperature} is 0,
 * else sampling from softmax(logits / temperature) restricted to the top-p nucleus, with a seeded random source.
 *
 * @param maxNewTokens the most tokens to generate (the stop token counts)
 * @param temperature  0 = greedy; > 0 = sample
 * @param topP         nucleus mass in (0, 1]; 1 = no restriction
 * @param seed         seed of the sampling random source (the same seed gives the same tokens)
 * @param presencePenalty  OpenAI's: subtracted from the logit of every token already generated, in [-2, 2]
 * @param frequencyPenalty OpenAI's: subtracted once per earlier occurrence of the token in the generated text, in [-2, 2]
 */
public record Sampling(int maxNewTokens, double temperature, double topP, long seed, double presencePenalty, double frequencyPenalty) {
    public Sampling(int maxNewTokens, double temperature, double topP, long seed) {
        this(maxNewTokens, temperature, topP, seed, 0, 0);
    }

    public Sampling {
        if (!(Math.abs(presencePenalty) <= 2) || !(Math.abs(frequencyPenalty) <= 2))
            throw new IllegalArgumentException("presence_penalty and frequency_penalty must be in [-2, 2]");
        if (maxNewTokens < 1) throw new IllegalArgumentException("max_new_tokens must be >= 1, got " + maxNewTokens);
        if (!(temperature >= 0) || Double.isInfinite(temperature))
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
    }

    public static Sampling greedy(int maxNewTokens) {
        return new Sampling(maxNewTokens, 0, 1, 0);
    }

    /** Whether logits depend on the tokens generated so far ({@link #presencePenalty}, {@link #frequencyPenalty}). */
    public boolean hasPenalties() {
        return presencePenalty != 0 || frequencyPenalty != 0;
    }

    public boolean isGreedy() {
        return temperature == 0;
    }
}
