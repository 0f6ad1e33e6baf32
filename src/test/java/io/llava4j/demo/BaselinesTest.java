package io.llava4j.demo;

import io.llava4j.demo.ShapesWorld.Obj;
import io.llava4j.demo.ShapesWorld.Qa;
import io.llava4j.demo.ShapesWorld.Scene;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** VQA exact match by type, the most-frequent-answer baseline and the constant caption chosen on training scenes. */
class BaselinesTest {
    private static Qa qa(String type, String answer) {
        return new Qa(type, "q", answer);
    }

    @Test
    void vqaAccuracyIsExactMatchPerTypeAndOverall() {
        List<List<Qa>> qas = List.of(List.of(qa("colour", "red"), qa("yes/no", "no"), qa("count", "two")),
                List.of(qa("colour", "blue"), qa("yes/no", "yes")));
        List<List<String>> answers = List.of(List.of("red .", "yes", "two"), List.of("blue", "yes extra"));
        Map<String, Double> acc = Evaluation.vqaAccuracy(qas, answers);
        assertEquals(3.0 / 5, acc.get("all"), 1e-12);
        assertEquals(1.0, acc.get("colour"), 1e-12, "a trailing ' .' is not part of the answer");
        assertEquals(0.0, acc.get("yes/no"), 1e-12, "'yes extra' is not 'yes'");
        assertEquals(1.0, acc.get("count"), 1e-12);
        assertFalse(acc.containsKey("shape"), "types never asked have no accuracy");
    }

    @Test
    void mostFrequentTrainingAnswerPerTypeScoresItsShare() {
        List<List<Qa>> train = List.of(List.of(qa("colour", "blue"), qa("yes/no", "yes")), List.of(qa("colour", "red"), qa("yes/no", "no")),
                List.of(qa("colour", "red"), qa("yes/no", "no")), List.of(qa("count", "one")));
        Map<String, String> mf = Baselines.mostFrequentAnswers(train);
        assertEquals(Map.of("colour", "red", "yes/no", "no", "count", "one"), mf);
        List<List<Qa>> test = List.of(List.of(qa("colour", "red"), qa("yes/no", "yes"), qa("shape", "circle")),
                List.of(qa("colour", "green"), qa("yes/no", "no"), qa("shape", "square")));
        Map<String, Double> acc = Evaluation.vqaAccuracy(test, Baselines.constantAnswers(test, mf));
        assertEquals(0.5, acc.get("colour"), 1e-12);
        assertEquals(0.5, acc.get("yes/no"), 1e-12);
        assertEquals(0.0, acc.get("shape"), 1e-12, "a type never seen in training gets no answer");
        assertEquals(2.0 / 6, acc.get("all"), 1e-12);
    }

    @Test
    void constantCaptionIsTheBestOnTheScenesItIsChosenOn() {
        Scene redLeft = new Scene(List.of(new Obj(0, 0, 0, 0)), 1), blueRight = new Scene(List.of(new Obj(1, 2, 1, 2)), 2);
        List<String> candidates = List.of("left : small red circle .", "right : large blue square .");
        var onTrain = Baselines.bestConstantCaption(List.of(redLeft, redLeft, blueRight), candidates);
        assertEquals("left : small red circle .", onTrain.getKey());
        assertEquals(2.0 / 3, onTrain.getValue(), 1e-12);
        assertEquals("right : large blue square .", Baselines.bestConstantCaption(List.of(blueRight), candidates).getKey());
    }
}
