package io.llava4j.cli;

import io.llava4j.engine.Device;
import picocli.CommandLine.Option;

/** {@code --device cpu|cuda|cuda:N}, shared by every command that runs the model. */
public final class DeviceOption {
    @Option(names = "--device", defaultValue = "cpu",
            description = "cpu (default), or cuda / cuda:N with the GPU build (mvn -Pgpu package)")
    String device;

    /** Selects the device; refuses CUDA where the presets have none. */
    void apply() {
        Device.use(device);
    }
}
