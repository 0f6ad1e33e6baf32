package io.llava4j.bench;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * A LLaVA training file shaped like llava_v1_5_mix665k for {@code bench/validate.sh}: {@code records} records, 94 % with
 * an image (as in mix665k), 1 to 8 rounds of 6–20-word questions and 3–120-word answers, images picked from
 * {@code images} distinct 640x480 JPEGs (COCO's usual size) written once.
 *
 * Words come from a tokenizer.json's vocabulary when one is given (about one token a word, as LLaMA's tokenizer on
 * English), else random letters (several tokens a word on a small vocabulary).
 *
 * <pre>java -cp ... io.llava4j.bench.LargeData OUT_DIR RECORDS IMAGES [TOKENIZER_JSON]</pre>
 */
public final class LargeData {
    private LargeData() {}

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        int records = Integer.parseInt(args[1]), images = Integer.parseInt(args[2]);
        Random rnd = new Random(7);
        Path folder = Files.createDirectories(out.resolve("images"));
        for (int i = 0; i < images; i++) {
            Path f = folder.resolve(String.format("%06d.jpg", i));
            if (Files.exists(f)) continue;
            BufferedImage img = new BufferedImage(640, 480, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            for (int k = 0; k < 40; k++) { // shapes and noise: a JPEG of realistic size (~40-60 KB)
                g.setColor(new Color(rnd.nextInt(0xffffff)));
                g.fillOval(rnd.nextInt(640), rnd.nextInt(480), 20 + rnd.nextInt(200), 20 + rnd.nextInt(200));
            }
            for (int y = 0; y < 480; y += 2)
                for (int x = 0; x < 640; x += 2) img.setRGB(x, y, img.getRGB(x, y) ^ rnd.nextInt(0x101010));
            g.dispose();
            ImageIO.write(img, "jpg", f.toFile());
        }
        String[] words = args.length > 3 ? vocabularyWords(Path.of(args[3])) : randomWords(rnd);
        try (JsonGenerator j = new JsonFactory().createGenerator(out.resolve("data.json").toFile(), JsonEncoding.UTF8)) {
            j.writeStartArray();
            for (int r = 0; r < records; r++) {
                j.writeStartObject();
                j.writeStringField("id", String.format("%09d", r));
                boolean image = rnd.nextInt(100) < 94;
                if (image) j.writeStringField("image", String.format("%06d.jpg", rnd.nextInt(images)));
                j.writeArrayFieldStart("conversations");
                int rounds = 1 + rnd.nextInt(8);
                for (int k = 0; k < rounds; k++) {
                    j.writeStartObject();
                    j.writeStringField("from", "human");
                    j.writeStringField("value", (k == 0 && image ? "<image>\n" : "") + sentence(rnd, words, 6 + rnd.nextInt(15)) + "?");
                    j.writeEndObject();
                    j.writeStartObject();
                    j.writeStringField("from", "gpt");
                    j.writeStringField("value", sentence(rnd, words, 3 + (rnd.nextInt(4) == 0 ? rnd.nextInt(118) : rnd.nextInt(12))) + ".");
                    j.writeEndObject();
                }
                j.writeEndArray();
                j.writeEndObject();
            }
            j.writeEndArray();
        }
    }

    /**
     * The whole words of a tokenizer.json's vocabulary ("▁answer" and the like, not a prefix of another): text made of
     * them has a real tokenizer's rate of about one token per word, where random letters on a small vocabulary give
     * several.
     */
    static String[] vocabularyWords(Path tokenizerJson) throws IOException {
        var vocab = new com.fasterxml.jackson.databind.ObjectMapper().readTree(tokenizerJson.toFile()).get("model").get("vocab");
        java.util.List<String> all = new java.util.ArrayList<>();
        vocab.fieldNames().forEachRemaining(k -> {
            if (k.startsWith("\u2581") && k.length() >= 4 && k.substring(1).chars().allMatch(Character::isLowerCase)) all.add(k.substring(1));
        });
        return all.stream().filter(w -> all.stream().noneMatch(o -> o.length() > w.length() && o.startsWith(w))).sorted().toArray(String[]::new);
    }

    private static String[] randomWords(Random rnd) {
        String[] words = new String[3000];
        for (int i = 0; i < words.length; i++) {
            StringBuilder w = new StringBuilder();
            int len = 2 + rnd.nextInt(8);
            for (int k = 0; k < len; k++) w.append((char) ('a' + rnd.nextInt(26)));
            words[i] = w.toString();
        }
        return words;
    }

    private static String sentence(Random rnd, String[] words, int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) b.append(i == 0 ? "" : " ").append(words[rnd.nextInt(words.length)]);
        return b.toString();
    }
}
