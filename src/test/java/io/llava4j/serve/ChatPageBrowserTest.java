package io.llava4j.serve;

import io.llava4j.TestData;
import io.llava4j.data.Conversation.Template;
import io.llava4j.generate.Assistant;
import io.llava4j.generate.Prompts;
import io.llava4j.generate.Sampling;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The chat page in a real headless Chromium (Debian's chromium + chromium-driver, through Selenium): pick an image, ask
 * two questions, read the streamed answers from the page. Skipped where the browser or its driver is not installed.
 */
class ChatPageBrowserTest {
    static final Path CHROMIUM = Path.of("/usr/bin/chromium"), DRIVER = Path.of("/usr/bin/chromedriver");

    @Test
    void pageStreamsAnswersOfAConversation(@TempDir Path profile) throws Exception {
        assumeTrue(Files.isExecutable(CHROMIUM) && Files.isExecutable(DRIVER), "needs /usr/bin/chromium and /usr/bin/chromedriver");
        Path img = TestData.tinyData().resolve("images/img1.png");
        try (Assistant tiny = Assistant.load(TestData.tinyLlava(), Assistant.Options.DEFAULT);
             LlavaServer server = new LlavaServer(tiny, ServeLimits.defaults()).start("127.0.0.1", 0)) {
            ChromeOptions o = new ChromeOptions();
            o.setBinary(CHROMIUM.toFile());
            o.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--user-data-dir=" + profile.toAbsolutePath());
            ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(DRIVER.toFile()).usingAnyFreePort().build();
            WebDriver driver = new ChromeDriver(service, o);
            try {
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(60));
                driver.get("http://127.0.0.1:" + server.port() + "/");
                wait.until(d -> d.findElement(By.id("model")).getText().equals(tiny.name()));
                driver.findElement(By.id("image")).sendKeys(img.toAbsolutePath().toString());
                wait.until(d -> d.findElement(By.id("preview")).isDisplayed());
                WebElement max = driver.findElement(By.id("max_tokens"));
                max.clear();
                max.sendKeys("10");

                Prompts conv = new Prompts(Template.VICUNA_V1);
                var px = tiny.pixels(img);
                List<String> questions = List.of("What shape is on top?", "And below it?");
                for (int turn = 0; turn < questions.size(); turn++) {
                    String q = questions.get(turn);
                    conv.user(turn == 0 ? Prompts.withImage(q) : q);
                    String want = tiny.decode(tiny.generator().generate(px, tiny.encode(conv.prompt(), true), Sampling.greedy(10), null).tokens());
                    assertFalse(want.isEmpty());
                    conv.answer(want);

                    driver.findElement(By.id("prompt")).sendKeys(q);
                    driver.findElement(By.id("send")).click();
                    int n = turn + 1;
                    wait.until(d -> d.findElements(By.cssSelector(".assistant[data-done='true']")).size() == n);
                    List<WebElement> answers = driver.findElements(By.cssSelector(".assistant"));
                    WebElement a = answers.get(turn);
                    assertFalse(a.getAttribute("class").contains("error"), a.getDomProperty("textContent"));
                    assertEquals(want, a.getDomProperty("textContent").strip(), "turn " + n);
                }
                assertEquals(2, driver.findElements(By.cssSelector(".user")).size());
            } finally {
                driver.quit();
            }
        }
    }
}
