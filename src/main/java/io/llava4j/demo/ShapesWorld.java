package io.llava4j.demo;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.GradientPaint;
import java.awt.Graphics2D;
import java.awt.Polygon;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * ShapesWorld: small images of 1–3 shapes, each in its own column (left, middle, right) of the middle row of a 3×3
 * grid of cells, with a kind, a colour and a size, on a varied background (grey levels, gradients, noise). Everything the demo trains on is derived from a
 * {@link Scene}: the rendered PNG, captions in many phrasings, and question–answer pairs. Deterministic per seed.
 */
public final class ShapesWorld {
    public static final List<String> KINDS = List.of("circle", "square", "triangle", "diamond");
    public static final List<String> COLOURS = List.of("red", "green", "blue", "yellow", "purple", "orange");
    public static final List<String> SIZES = List.of("small", "large");
    public static final List<String> POSITIONS = List.of("left", "middle", "right");
    public static final List<String> COUNTS = List.of("one", "two", "three");
    private static final int[][] RGB = {{220, 30, 30}, {30, 170, 40}, {40, 70, 235}, {240, 220, 30}, {150, 40, 200}, {250, 130, 20}};

    /** One shape: indices into {@link #KINDS}, {@link #COLOURS}, {@link #SIZES} and {@link #POSITIONS} (its column). */
    public record Obj(int kind, int colour, int size, int position) {
        /** Its row in the 3×3 grid of cells (0 = top): every shape sits in the middle row; captions do not mention it. */
        public int row() { return 1; }

        public String kindName() { return KINDS.get(kind); }
        public String colourName() { return COLOURS.get(colour); }
        public String sizeName() { return SIZES.get(size); }
        public String positionName() { return POSITIONS.get(position); }
        /** "small red circle" */
        public String phrase() { return sizeName() + " " + colourName() + " " + kindName(); }
    }

    /** A scene: its objects from left to right, and the seed of its rendering (background, jitter). */
    public record Scene(List<Obj> objects, long renderSeed) {
        public Scene {
            objects = List.copyOf(objects);
        }
    }

    /**
     * Scale of a shape's jitter inside its cell (lab switch). 0 by default: with ±2 px of jitter a small shape (8 px) in
     * its 16 px patch is no fixed template, and the tiny tower's linear patch embedding read its kind late and badly
     * (select-layer kind probe 0.98–1.00 without jitter against 0.72–0.97 with it, two seeds, one middle row; see
     * Pretraining.Clip#wordWeights).
     */
    static final double JITTER = Double.parseDouble(System.getProperty("llava4j.demo.jitter", "0"));

    private ShapesWorld() {}

    /** 1–3 distinct columns of the middle row at random, left to right (the draws every scene's shapes are placed by). */
    static List<Integer> columns(Random r) {
        int n = 1 + r.nextInt(3);
        List<Integer> cols = new ArrayList<>(List.of(0, 1, 2));
        java.util.Collections.shuffle(cols, r);
        List<Integer> used = new ArrayList<>(cols.subList(0, n));
        java.util.Collections.sort(used);
        return used;
    }

    /** A random scene of 1–3 objects in distinct columns of the middle row. */
    public static Scene scene(Random r) {
        return scene(r, o -> true);
    }

    /**
     * A random scene of 1–3 objects in distinct columns of the middle row, each object drawn again until
     * {@code allowed} accepts it (with every object allowed, the same draws as {@link #scene(Random)}).
     */
    public static Scene scene(Random r, java.util.function.Predicate<Obj> allowed) {
        List<Obj> objs = new ArrayList<>();
        for (int c : columns(r)) {
            Obj o;
            do o = new Obj(r.nextInt(KINDS.size()), r.nextInt(COLOURS.size()), r.nextInt(SIZES.size()), c);
            while (!allowed.test(o));
            objs.add(o);
        }
        return new Scene(objs, r.nextLong());
    }

    /**
     * The scene with one attribute of one object changed (kind most often, else colour, size or column), drawn on the
     * same background: the hard negative of contrastive pre-training. In a random batch two scenes almost never differ
     * in a shape's kind alone, so without twins a tower can match captions by colour and count and never learn kinds.
     */
    public static Scene twin(Scene s, Random r) {
        List<Obj> objs = new ArrayList<>(s.objects());
        int i = r.nextInt(objs.size());
        Obj o = objs.get(i);
        List<Integer> free = new ArrayList<>(List.of(0, 1, 2));
        for (Obj x : objs) free.remove(Integer.valueOf(x.position()));
        double u = r.nextDouble();
        Obj t;
        if (u < 0.45 || (u >= 0.85 && free.isEmpty())) t = new Obj(other(o.kind(), KINDS.size(), r), o.colour(), o.size(), o.position());
        else if (u < 0.65) t = new Obj(o.kind(), other(o.colour(), COLOURS.size(), r), o.size(), o.position());
        else if (u < 0.85) t = new Obj(o.kind(), o.colour(), 1 - o.size(), o.position());
        else t = new Obj(o.kind(), o.colour(), o.size(), free.get(r.nextInt(free.size())));
        objs.set(i, t);
        objs.sort(java.util.Comparator.comparingInt(Obj::position));
        return new Scene(objs, s.renderSeed());
    }

    private static int other(int v, int n, Random r) {
        return (v + 1 + r.nextInt(n - 1)) % n;
    }

    // ---------------------------------------------------------------- rendering

    /** Renders a scene at {@code size}×{@code size} pixels. */
    public static BufferedImage render(Scene s, int size) {
        Random r = new Random(s.renderSeed());
        BufferedImage img = new BufferedImage(size, size, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        paintBackground(img, g, size, r);
        for (Obj o : s.objects()) paintShape(g, size, o.kindName(), RGB[o.colour()], o.size(), o.position(), o.row(), r);
        g.setStroke(new BasicStroke(1));
        g.dispose();
        return img;
    }

    /** A varied grey background: a faintly tinted gradient with speckle noise. */
    static void paintBackground(BufferedImage img, Graphics2D g, int size, Random r) {
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        int base = 35 + r.nextInt(175);
        Color c1 = grey(base, r), c2 = grey(Math.max(0, Math.min(255, base + r.nextInt(81) - 40)), r);
        boolean vertical = r.nextBoolean();
        g.setPaint(new GradientPaint(0, 0, c1, vertical ? 0 : size, vertical ? size : 0, c2));
        g.fillRect(0, 0, size, size);
        for (int i = 0; i < size * size / 12; i++) { // speckle noise
            int v = Math.max(0, Math.min(255, base + r.nextInt(61) - 30));
            img.setRGB(r.nextInt(size), r.nextInt(size), new Color(v, v, v).getRGB());
        }
    }

    /**
     * One shape in its cell of the 3×3 grid (column {@code position}, row {@code row}), centred (or jittered: JITTER),
     * filled with {@code rgb} jittered: one of {@link #KINDS}, or a shape of no kind ({@link AttributeShapes#BLOBS}).
     */
    static void paintShape(Graphics2D g, int size, String shape, int[] rgb, int sizeIndex, int position, int row, Random r) {
        double col = size / 3.0;
        double rad = (sizeIndex == 0 ? 0.17 : 0.30) * col * 1.5 * (0.9 + 0.2 * r.nextDouble());
        double jitter = JITTER * Math.max(0, Math.min(col / 2 - rad - 0.5, size / 24.0));
        double cx = col * (position + 0.5) + (r.nextDouble() - 0.5) * 2 * jitter;
        double cy = col * (row + 0.5) + (r.nextDouble() - 0.5) * 2 * jitter;
        g.setColor(new Color(jit(rgb[0], r), jit(rgb[1], r), jit(rgb[2], r)));
        switch (shape) {
            case "circle" -> g.fill(new Ellipse2D.Double(cx - rad, cy - rad, 2 * rad, 2 * rad));
            case "square" -> g.fillRect((int) Math.round(cx - rad * 0.9), (int) Math.round(cy - rad * 0.9),
                    (int) Math.round(1.8 * rad), (int) Math.round(1.8 * rad));
            case "triangle" -> g.fill(poly(new double[]{cx, cx + rad, cx - rad}, new double[]{cy - rad, cy + rad * 0.8, cy + rad * 0.8}));
            case "diamond" -> g.fill(poly(new double[]{cx, cx + rad, cx, cx - rad}, new double[]{cy - rad * 1.1, cy, cy + rad * 1.1, cy}));
            case "plus" -> { // two bars crossing: no kind of the world
                double w = Math.max(1.5, rad * 0.7);
                g.fill(new java.awt.geom.Rectangle2D.Double(cx - rad, cy - w / 2, 2 * rad, w));
                g.fill(new java.awt.geom.Rectangle2D.Double(cx - w / 2, cy - rad, w, 2 * rad));
            }
            case "bar" -> { // a flat bar, three times as wide as high
                double h = Math.max(1.5, rad * 0.65);
                g.fill(new java.awt.geom.Rectangle2D.Double(cx - rad, cy - h / 2, 2 * rad, h));
            }
            default -> throw new IllegalStateException(shape);
        }
    }

    /** The RGB of world colour {@code c} (before each shape's jitter). */
    static int[] rgb(int c) {
        return RGB[c];
    }

    private static Color grey(int v, Random r) {
        int t = r.nextInt(21) - 10; // a faint tint
        return new Color(clamp(v + t), clamp(v), clamp(v - t));
    }

    private static int jit(int v, Random r) {
        return clamp(v + r.nextInt(31) - 15);
    }

    private static int clamp(int v) {
        return Math.max(0, Math.min(255, v));
    }

    private static Polygon poly(double[] xs, double[] ys) {
        Polygon p = new Polygon();
        for (int i = 0; i < xs.length; i++) p.addPoint((int) Math.round(xs[i]), (int) Math.round(ys[i]));
        return p;
    }

    public static void writePng(Scene s, int size, Path file) throws IOException {
        ImageIO.write(render(s, size), "png", file.toFile());
    }

    // ---------------------------------------------------------------- text

    /** Number of caption phrasings {@link #caption} knows. */
    public static final int PHRASINGS = 8;

    /** The compact list phrasing, "left : small red circle . right : large blue square .": stage 1's captions. */
    public static final int LIST_PHRASING = 2;

    /**
     * The scene described in phrasing {@code k}. Every phrasing names each object's size, colour, kind and position in
     * one clause that starts with the position ("on the left …"), so that a reader of the grid knows which cell the
     * words that follow describe; clauses are separated by "and", ",", ";" or "." so that {@link #parseCaption} reads
     * them all.
     */
    public static String caption(Scene s, int k) {
        List<Obj> os = s.objects();
        List<String> parts = new ArrayList<>();
        switch (k) {
            case 0 -> { // there are two shapes : on the left a small red circle and on the right a large blue square .
                for (Obj o : os) parts.add(on(o) + " a " + o.phrase());
                return (os.size() == 1 ? "there is " : "there are " + count(os) + " shapes : ") + join(parts, " and ") + " .";
            }
            case 1 -> { // on the left is a small red circle ; on the right is a large blue square .
                for (Obj o : os) parts.add(on(o) + " is a " + o.phrase());
                return join(parts, " ; ") + " .";
            }
            case 2 -> { // left : small red circle . right : large blue square .
                for (Obj o : os) parts.add(o.positionName() + " : " + o.phrase() + " .");
                return join(parts, " ");
            }
            case 3 -> { // the image shows at the left a small red circle , and at the right a large blue square .
                for (Obj o : os) parts.add("at the " + o.positionName() + " a " + o.phrase());
                return "the image shows " + join(parts, " , and ") + " .";
            }
            case 4 -> { // a picture showing on the left a small red circle , on the right a large blue square .
                for (Obj o : os) parts.add(on(o) + " a " + o.phrase());
                return "a picture showing " + join(parts, " , ") + " .";
            }
            case 5 -> { // we see on the left a red circle that is small and on the right ...
                for (Obj o : os) parts.add(on(o) + " a " + o.colourName() + " " + o.kindName() + " that is " + o.sizeName());
                return "we see " + join(parts, " and ") + " .";
            }
            case 6 -> { // two shapes : left small red circle ; right large blue square .   (a list)
                for (Obj o : os) parts.add(o.positionName() + " " + o.phrase());
                return count(os) + (os.size() == 1 ? " shape : " : " shapes : ") + join(parts, " ; ") + " .";
            }
            case 7 -> { // on the left there is a small red circle , and on the right there is a large blue square .
                for (Obj o : os) parts.add(on(o) + " there is a " + o.phrase());
                return join(parts, " , and ") + " .";
            }
            default -> throw new IllegalArgumentException("phrasing " + k);
        }
    }

    private static String on(Obj o) {
        return o.position() == 1 ? "in the middle" : "on the " + o.positionName();
    }

    private static String count(List<Obj> os) {
        return COUNTS.get(os.size() - 1);
    }

    private static String join(List<String> parts, String sep) {
        return String.join(sep, parts);
    }

    /** The word of an empty cell in {@link #grid}. */
    public static final String EMPTY_CELL = "empty";

    /** The one word naming a cell's shape in {@link #grid}: "left_small_red_circle". */
    public static String cellWord(Obj o) {
        return o.positionName() + "_" + o.sizeName() + "_" + o.colourName() + "_" + o.kindName();
    }

    /**
     * The scene as nine words, one per cell of the 3×3 grid in raster order (the order of a 3×3 patch grid's image
     * tokens): {@link #cellWord} where a shape sits, {@link #EMPTY_CELL} elsewhere. The LLM reads this "visual
     * vocabulary" in its pre-training text, so that a projector can later speak to the frozen LLM one word per image
     * token.
     */
    public static String grid(Scene s) {
        String[] cells = new String[9];
        java.util.Arrays.fill(cells, EMPTY_CELL);
        for (Obj o : s.objects()) cells[o.row() * 3 + o.position()] = cellWord(o);
        return String.join(" ", cells);
    }

    /** A question, its answer and its type (colour, shape, size, position, count, yes/no). */
    public record Qa(String type, String question, String answer) {}

    public static final List<String> QA_TYPES = List.of("colour", "shape", "size", "position", "count", "yes/no");

    /** A question of {@code type} about the scene (types that need a unique object fall back to count). */
    public static Qa question(Scene s, String type, Random r) {
        return question(s, type, r, -1, (kind, colour) -> true);
    }

    /**
     * A question of {@code type} about object {@code about} of the scene (a random one where -1); a "no" question names
     * only a (kind, colour) pair that {@code askable} accepts (and that the scene does not hold).
     */
    public static Qa question(Scene s, String type, Random r, int about, java.util.function.BiPredicate<Integer, Integer> askable) {
        List<Obj> os = s.objects();
        int pick = r.nextInt(os.size());
        Obj o = os.get(about >= 0 ? about : pick);
        boolean kindUnique = os.stream().filter(x -> x.kind() == o.kind()).count() == 1;
        switch (type) {
            case "colour":
                if (kindUnique) return new Qa(type, "what colour is the " + o.kindName() + " ?", o.colourName());
                return new Qa(type, "what colour is the shape " + on(o) + " ?", o.colourName());
            case "shape":
                return new Qa(type, "what shape is " + on(o) + " ?", o.kindName());
            case "size":
                return new Qa(type, "what size is the " + o.colourName() + " " + o.kindName() + " " + on(o) + " ?", o.sizeName());
            case "position":
                if (!unique(os, o)) return new Qa("count", "how many shapes are there ?", count(os));
                return new Qa(type, "where is the " + o.colourName() + " " + o.kindName() + " ?", o.positionName());
            case "count":
                return new Qa(type, "how many shapes are there ?", count(os));
            case "yes/no": {
                boolean yes = r.nextBoolean();
                int kind, colour;
                if (yes) {
                    kind = o.kind();
                    colour = o.colour();
                } else {
                    do {
                        kind = r.nextInt(KINDS.size());
                        colour = r.nextInt(COLOURS.size());
                    } while (has(os, kind, colour) || !askable.test(kind, colour));
                }
                return new Qa(type, "is there a " + COLOURS.get(colour) + " " + KINDS.get(kind) + " ?", yes ? "yes" : "no");
            }
            default:
                throw new IllegalArgumentException("question type " + type);
        }
    }

    private static boolean unique(List<Obj> os, Obj o) {
        return os.stream().filter(x -> x.kind() == o.kind() && x.colour() == o.colour()).count() == 1;
    }

    private static boolean has(List<Obj> os, int kind, int colour) {
        for (Obj x : os) if (x.kind() == kind && x.colour() == colour) return true;
        return false;
    }

    // ---------------------------------------------------------------- reading captions back

    /** An object read from a caption; a field is -1 where the clause did not say it. */
    public record Parsed(int kind, int colour, int size, int position) {}

    /**
     * The objects a caption names: the caption is cut into clauses at "and", ",", ";", "." and each clause holding a
     * kind word is one object with the colour, size and position words of that clause.
     */
    public static List<Parsed> parseCaption(String caption) {
        List<Parsed> out = new ArrayList<>();
        List<String> clause = new ArrayList<>();
        for (String w : (caption + " .").trim().split("\\s+")) {
            if (w.equals("and") || w.equals(",") || w.equals(";") || w.equals(".")) {
                Parsed p = clause(clause);
                if (p != null) out.add(p);
                clause.clear();
            } else {
                clause.add(w);
            }
        }
        return out;
    }

    private static Parsed clause(List<String> words) {
        int kind = -1, colour = -1, size = -1, pos = -1;
        for (String w : words) {
            if (KINDS.contains(w)) kind = kind < 0 ? KINDS.indexOf(w) : kind;
            if (COLOURS.contains(w)) colour = colour < 0 ? COLOURS.indexOf(w) : colour;
            if (SIZES.contains(w)) size = size < 0 ? SIZES.indexOf(w) : size;
            if (POSITIONS.contains(w)) pos = pos < 0 ? POSITIONS.indexOf(w) : pos;
        }
        return kind < 0 ? null : new Parsed(kind, colour, size, pos);
    }

    /**
     * Caption attribute accuracy of one caption: each object of the scene is paired with the first unpaired object the
     * caption places at the same position and scores 1/3 for each of kind, colour and size that agree (an object whose
     * position the caption does not name scores 0); the sum is divided by the larger of the scene's and the caption's
     * object counts, so extra or missing objects cost.
     */
    public static double captionAccuracy(Scene s, List<Parsed> parsed) {
        List<Obj> truth = s.objects();
        boolean[] used = new boolean[parsed.size()];
        double score = 0;
        for (Obj t : truth) {
            for (int i = 0; i < parsed.size(); i++)
                if (!used[i] && parsed.get(i).position() == t.position()) {
                    used[i] = true;
                    Parsed p = parsed.get(i);
                    score += ((t.kind() == p.kind() ? 1 : 0) + (t.colour() == p.colour() ? 1 : 0) + (t.size() == p.size() ? 1 : 0)) / 3.0;
                    break;
                }
        }
        return truth.isEmpty() && parsed.isEmpty() ? 1 : score / Math.max(truth.size(), parsed.size());
    }

    /** All words any caption, question or answer of the world can use (the closed vocabulary's content words). */
    public static List<String> vocabulary() {
        java.util.LinkedHashSet<String> words = new java.util.LinkedHashSet<>();
        Random r = new Random(0);
        for (int i = 0; i < 4000; i++) {
            Scene s = scene(r);
            for (int k = 0; k < PHRASINGS; k++) words.addAll(List.of(caption(s, k).split(" ")));
            for (String t : QA_TYPES) {
                Qa q = question(s, t, r);
                words.addAll(List.of(q.question().split(" ")));
                words.add(q.answer());
            }
        }
        words.addAll(KINDS);
        words.addAll(COLOURS);
        words.addAll(SIZES);
        words.addAll(POSITIONS);
        words.addAll(COUNTS);
        words.addAll(List.of("yes", "no"));
        words.add(EMPTY_CELL);
        for (int p = 0; p < POSITIONS.size(); p++)
            for (int z = 0; z < SIZES.size(); z++)
                for (int c = 0; c < COLOURS.size(); c++)
                    for (int k = 0; k < KINDS.size(); k++) words.add(cellWord(new Obj(k, c, z, p)));
        return new ArrayList<>(words);
    }
}
