package io.llava4j.nn;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.OperatorHandle;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A frozen linear weight kept for inference in oneDNN's blocked layout ({@code mkldnn::_reorder_linear_weight}, what
 * PyTorch's inductor does when it freezes a model for CPU), multiplied by {@code mkldnn::_linear_pointwise} for any row
 * count. A decoding step multiplies a few rows by every weight matrix: the cost is streaming the matrices from memory;
 * with the product taking dense inputs (no layout conversion per call) the blocked layout decodes TinyLlama-1.1B's
 * shape faster than the plain one in fp32 and in bf16, with prompts as fast or faster (bench/README.md, decode), so
 * {@code generate.InferenceWeights} packs wherever the weights compute in their storage type.
 *
 * <p>Only for weights that no longer change (inference): the blocked copy is made once and never updated. The plain
 * parameter's memory is released after packing ({@link Linear#packForInference}), so the weights are held once.
 */
public final class PackedWeight implements InferenceMatrix {
    private static final OperatorHandle[] OPS = io.llava4j.engine.Ops.find("mkldnn::_reorder_linear_weight", "mkldnn::_linear_pointwise");
    private static final OperatorHandle REORDER = OPS[0];
    /** x·Wᵀ + b on a dense x with the blocked W, dense result (inductor's CPU linear): no layout conversions per call. */
    private static final OperatorHandle POINTWISE = OPS[1];
    /** The element type of its {@code Scalar?[] scalars} argument, for the empty list a call passes. */
    private static final org.bytedeco.pytorch.Type.TypePtr SCALAR_OPTIONAL = POINTWISE == null ? null
            : io.llava4j.engine.Ops.listElementType(POINTWISE, 4);

    private final Tensor blocked; // [out, in] oneDNN layout, in the compute type
    private final long in, out;
    private final ScalarType type;

    private PackedWeight(Tensor blocked, long out, long in, ScalarType type) {
        this.blocked = blocked;
        this.out = out;
        this.in = in;
        this.type = type;
    }

    /** True where libtorch was built with oneDNN and its linear-weight reorder is registered. */
    public static boolean available() {
        return REORDER != null;
    }

    /**
     * The blocked copy of {@code weight} [out, in] in {@code type} (fp32 or bf16), or null where it would not be exact.
     * libtorch 2.10's reorder loses values when {@code out} is not a multiple of 64 (seen with 48, 80, 96, 1000 rows;
     * 16, 32 and multiples of 64 are exact): such matrices are not packed, and every packed one is read back and
     * compared with the original before it is used.
     */
    public static PackedWeight of(Tensor weight, ScalarType type) {
        if (!available()) throw new IllegalStateException("libtorch has no oneDNN linear-weight reorder here");
        if (type != ScalarType.Float && type != ScalarType.BFloat16)
            throw new IllegalArgumentException("packed weights are fp32 or bf16, not " + type);
        if (weight.dim() != 2 || weight.size(0) % 64 != 0) return null;
        Tensor blocked = new Tensor();
        try (PointerScope scope = new PointerScope()) {
            Tensor w = weight.scalar_type().intern() == type ? weight.contiguous() : weight.to(type).contiguous();
            IValueVector args = new IValueVector(new IValue(w), new IValue());
            REORDER.callBoxed(args);
            Tensor b = args.get(0).toTensor(); // points into the vector's IValue
            if (!torch.equal(b.to_dense(), w)) return null;
            blocked.put(b); // an owning handle that outlives the scope
        }
        return new PackedWeight(blocked, weight.size(0), weight.size(1), type);
    }

    /** Bytes of the blocked copy. */
    @Override
    public long bytes() {
        return out * in * (type == ScalarType.Float ? 4 : 2);
    }

    /**
     * x·Wᵀ + b for x [.., in] (any float type; cast to the weight's type) → [.., out] fp32 where x is fp32 (as
     * {@link Autocast} returns GEMM results), else in x's type.
     */
    @Override
    public Tensor linear(Tensor x, Tensor bias) {
        return Scopes.keep(() -> {
            ScalarType xt = x.scalar_type().intern();
            long rows = x.numel() / in;
            Tensor x2 = x.reshape(rows, in);
            if (xt != type) x2 = x2.to(type);
            Tensor b = bias == null ? null : bias.scalar_type().intern() == type ? bias : bias.to(type);
            Tensor y = POINTWISE != null ? pointwise(x2.contiguous(), b) : (b == null ? torch.mkldnn_linear(x2.contiguous().to_mkldnn(), blocked)
                    : torch.mkldnn_linear(x2.contiguous().to_mkldnn(), blocked, new TensorOptional(b))).to_dense();
            if (y.scalar_type().intern() != xt) y = y.to(xt);
            long[] shape = x.sizes().vec().get();
            shape[shape.length - 1] = out;
            return y.view(shape);
        });
    }

    /**
     * [rows, in] dense, in the weight's type → [rows, out] dense: {@code mkldnn::_linear_pointwise} without a fused
     * activation. The older {@code mkldnn_linear} wants the input converted to oneDNN's tensor and gives one back, two
     * conversions that cost as much as the product itself for a decoding step's small matrices (bench/README.md).
     */
    private Tensor pointwise(Tensor x, Tensor bias) {
        IValueVector args = new IValueVector(new IValue(x), new IValue(blocked), bias == null ? new IValue() : new IValue(bias),
                new IValue("none"), new IValue(new org.bytedeco.pytorch.GenericList(SCALAR_OPTIONAL)), new IValue());
        POINTWISE.callBoxed(args);
        Tensor y = new Tensor();
        y.put(args.get(0).toTensor()); // an owning handle: the one returned points into the vector
        return y;
    }
}
