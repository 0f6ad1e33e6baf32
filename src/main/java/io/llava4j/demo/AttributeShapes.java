package io.llava4j.demo;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.llava4j.io.JsonFiles;

import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Tower-only images of shapes that show one attribute of a (kind, colour) pair and not the other: a colour without a
 * kind (a plus or a bar, none of the world's kinds, in one of the world's colours) or a kind without a colour (a circle,
 * square, triangle or diamond in white, black, cyan or pink, none of the world's colours). The tower learns from them
 * through the region–word terms of the attribute shown only (the other's target is ignored), so it reads each colour on
 * shapes of no kind and each kind in colours of no name, and no image holds a (kind, colour) pair at all. Trained only
 * on the pairs that occur, the tower had learnt to read a colour partly from the kind it comes with (a purple shape is
 * never a circle) and so misread the novel pairs; these images give both read-outs a reason to stand alone.
 * No kind-only shape sits where its kind would make a novel (kind, position) pair.
 */
public final class AttributeShapes {
    /** Shapes of no kind, for colour-only examples. */
    public static final List<String> BLOBS = List.of("plus", "bar");
    /** Colours of no name, for kind-only examples: none of {@link ShapesWorld#COLOURS}. */
    public static final List<String> NEUTRAL = List.of("white", "black", "cyan", "pink");
    private static final int[][] NEUTRAL_RGB = {{235, 235, 235}, {25, 25, 25}, {40, 200, 210}, {245, 140, 190}};
    private static final ObjectMapper JSON = new ObjectMapper();

    private AttributeShapes() {}

    /**
     * One attribute-only shape: either {@code kind} (index into {@link ShapesWorld#KINDS}) drawn in neutral colour
     * {@code neutral}, or blob {@code blob} drawn in world colour {@code colour}; -1 for the fields it does not have.
     */
    public record Shape(int kind, int neutral, int blob, int colour, int size, int position) {
        public boolean showsKind() { return kind >= 0; }
        /** Its outline's name: a kind, or a blob of no kind. */
        String shapeName() { return showsKind() ? ShapesWorld.KINDS.get(kind) : BLOBS.get(blob); }
        /** The region–word targets (kind, colour, size), -100 (ignored) for the attribute not shown. */
        long[] targets() {
            return new long[]{showsKind() ? kind : -100, showsKind() ? -100 : colour, size};
        }
    }

    /** An image of 1–3 attribute-only shapes in distinct columns of the middle row. */
    public record Image(List<Shape> shapes, long renderSeed) {}

    /** {@code n} random images, each shape kind-only or colour-only with even odds. */
    public static List<Image> draw(Random r, int n) {
        List<Image> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            List<Shape> shapes = new ArrayList<>();
            for (int c : ShapesWorld.columns(r)) {
                int size = r.nextInt(ShapesWorld.SIZES.size());
                if (r.nextBoolean()) {
                    int kind;
                    do kind = r.nextInt(ShapesWorld.KINDS.size());
                    while (Split.novelPlace(kind, c));
                    shapes.add(new Shape(kind, r.nextInt(NEUTRAL.size()), -1, -1, size, c));
                } else {
                    shapes.add(new Shape(-1, -1, r.nextInt(BLOBS.size()), r.nextInt(ShapesWorld.COLOURS.size()), size, c));
                }
            }
            out.add(new Image(shapes, r.nextLong()));
        }
        return out;
    }

    /** Renders an image as {@link ShapesWorld#render} renders a scene: the same backgrounds, cells and sizes. */
    public static BufferedImage render(Image im, int size) {
        Random r = new Random(im.renderSeed());
        BufferedImage img = new BufferedImage(size, size, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        ShapesWorld.paintBackground(img, g, size, r);
        for (Shape s : im.shapes()) {
            String shape = s.shapeName();
            int[] rgb = s.showsKind() ? NEUTRAL_RGB[s.neutral()] : ShapesWorld.rgb(s.colour());
            ShapesWorld.paintShape(g, size, shape, rgb, s.size(), s.position(), 1, r);
        }
        g.dispose();
        return img;
    }

    /**
     * Writes the images' shapes to {@code file}, one line per image: {"image": "attribute i", "shapes": [{"shape",
     * "colour", "size", "position", "labels"}, …]}, "labels" naming the attributes the tower is taught on that shape.
     */
    public static void write(List<Image> images, Path file) throws IOException {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < images.size(); i++) {
            ObjectNode line = JSON.createObjectNode();
            line.put("image", "attribute " + i);
            ArrayNode shapes = line.putArray("shapes");
            for (Shape s : images.get(i).shapes()) {
                ObjectNode o = shapes.addObject();
                o.put("shape", s.shapeName());
                o.put("colour", s.showsKind() ? NEUTRAL.get(s.neutral()) : ShapesWorld.COLOURS.get(s.colour()));
                o.put("size", ShapesWorld.SIZES.get(s.size()));
                o.put("position", ShapesWorld.POSITIONS.get(s.position()));
                o.putArray("labels").add(s.showsKind() ? "kind" : "colour").add("size");
            }
            b.append(JSON.writeValueAsString(line)).append('\n');
        }
        JsonFiles.writeText(file, b.toString());
    }
}
