using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TrainingForensics.Native;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

/// <summary>
/// Adam's update of one CPU float32 parameter in one pass over its memory, with the numbers of
/// <see cref="AdamGroupStep"/>'s libtorch operations bit for bit. Those operations took about 0.8 ms per step of
/// notebook 02's MNIST MLP (235,146 weights): eight passes over the weights, two fresh tensors, and libtorch's CPU
/// sqrt, which is MKL's vsSqrt: several times slower than the hardware instruction here, and slower again on the
/// exact zeros that MNIST's blank border pixels leave in the second moment. This pass, in blocks that stay in cache,
/// with MKL's vsSqrt called once per block on the zeros swapped for ones, takes about 0.45 ms (measured: ~440 vs ~800 µs).
/// </summary>
/// <remarks>
/// Bit for bit, as each libtorch kernel computes on AVX2: <c>add_(t, α)</c> and <c>addcmul_</c> with one fused
/// multiply-add, <c>mul_</c>, <c>div</c> and <c>addcdiv_</c> without; Scalars rounded to float first. MKL's sqrt is not
/// correctly rounded (it differs from the hardware's in about one value in six), so the same MKL call computes the
/// roots; where libtorch's sqrt is the hardware's, that one is used. The choice is made once per process by a
/// self-check — random values over the whole float range and a dozen Adam steps with every option, against the libtorch
/// operations — and anything that does not match exactly leaves Adam on those operations (<see cref="Setting"/> says
/// which). Only plain contiguous CPU float32 tensors take this path; CUDA, other types and AMSGrad keep the operations.
/// Writing the memory directly does not bump autograd's version counters: a graph that saved the old weights and is
/// back-propagated after the step is not caught, which a training step never does.
/// </remarks>
internal static unsafe class FusedAdam
{
    enum Roots { Unchecked, Mkl, Hardware, Off }

    static readonly object Gate = new();
    static Roots _roots = Roots.Unchecked;

    /// <summary>What the self-check chose, for the environment summary.</summary>
    public static string Setting { get; private set; } = "not checked yet";

    /// <summary>For tests: whether the next steps take the fused path (runs the self-check if needed).</summary>
    public static bool Enabled => Choose() is Roots.Mkl or Roots.Hardware;

    /// <summary>For tests: parameters stepped on the fused path so far in this process.</summary>
    public static long ParameterSteps => Interlocked.Read(ref _parameterSteps);
    static long _parameterSteps;

    const int Block = 4096; // floats per block: its four streams and its roots (16 KiB each) stay in cache between the passes

    [DllImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    static extern IntPtr TensorData(IntPtr handle);

    // MKL's single-precision sqrt, exported by libtorch_cpu (libtorch's CPU sqrt calls it); MKL_INT is 32-bit (LP64)
    [DllImport("libtorch_cpu", EntryPoint = "vsSqrt")]
    static extern void MklSqrt(int n, float* a, float* r);

    /// <summary>The constants of one parameter's step, rounded to float as libtorch rounds its Scalars.</summary>
    internal readonly struct Constants
    {
        public readonly float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, Decay, RootCorrection2, Eps, StepSize;
        public readonly bool Maximize, Decoupled, CoupledDecay;

        public Constants(double beta1, double beta2, double eps, double lr, double weightDecay, bool maximize, bool decoupled, long step)
        {
            Beta1 = (float)beta1; OneMinusBeta1 = (float)(1 - beta1); Beta2 = (float)beta2; OneMinusBeta2 = (float)(1 - beta2);
            Decay = (float)(decoupled ? 1 - lr * weightDecay : weightDecay);
            RootCorrection2 = (float)Math.Sqrt(1 - Math.Pow(beta2, step));
            Eps = (float)eps;
            StepSize = (float)(-(lr / (1 - Math.Pow(beta1, step))));
            Maximize = maximize; Decoupled = decoupled; CoupledDecay = !decoupled && weightDecay != 0;
        }
    }

    /// <summary>
    /// Steps <paramref name="param"/> in place (and the two moments) if the fused path applies; false leaves everything
    /// untouched for the libtorch operations.
    /// </summary>
    public static bool TryStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, in Constants c)
    {
        var roots = Choose();
        if (roots is not (Roots.Mkl or Roots.Hardware) || !Plain(param, grad, expAvg, expAvgSq)) return false;
        Run((float*)TensorData(param.Handle), (float*)TensorData(grad.Handle), (float*)TensorData(expAvg.Handle),
            (float*)TensorData(expAvgSq.Handle), checked((int)param.numel()), c, roots == Roots.Mkl);
        GC.KeepAlive(param); GC.KeepAlive(grad); GC.KeepAlive(expAvg); GC.KeepAlive(expAvgSq);
        Interlocked.Increment(ref _parameterSteps);
        return true;
    }

    static bool Plain(Tensor param, params Tensor[] others)
    {
        long n = param.numel();
        if (n == 0 || n > int.MaxValue) return false;
        foreach (var t in others.Prepend(param))
            if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || !t.is_contiguous() || t.numel() != n || t.is_sparse)
                return false;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // optimised from the first step (no slow first tier for a hot loop)
    static void Run(float* p, float* g, float* m, float* v, int n, in Constants c, bool mkl)
    {
        float* roots = stackalloc float[Block];
        for (int start = 0; start < n; start += Block)
        {
            int len = Math.Min(Block, n - start);
            Moments(p + start, g + start, m + start, v + start, roots, len, c);
            SquareRoots(roots, len, mkl);
            Update(p + start, m + start, v + start, roots, len, c);
        }
    }

    // g ← −g (maximize); w ← w·(1 − lr·λ) (AdamW) or g ← g + λ·w (L2, one FMA as add's alpha);
    // m ← m·β₁ + (1 − β₁)·g (add_: one FMA); v ← v·β₂ + ((1 − β₂)·g)·g (addcmul_: one FMA);
    // roots ← v, with 1 for each +0 (MKL takes a slow path for zeros; Update puts their root, +0, back)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // optimised from the first step (no slow first tier for a hot loop)
    static void Moments(float* p, float* g, float* m, float* v, float* roots, int n, in Constants c)
    {
        int i = 0;
        if (Vectorised)
        {
            var b1 = Vector256.Create(c.Beta1); var omb1 = Vector256.Create(c.OneMinusBeta1);
            var b2 = Vector256.Create(c.Beta2); var omb2 = Vector256.Create(c.OneMinusBeta2);
            var decay = Vector256.Create(c.Decay); var sign = Vector256.Create(-0.0f); var one = Vector256.Create(1.0f);
            for (; i + 8 <= n; i += 8)
            {
                var gi = Avx.LoadVector256(g + i);
                if (c.Maximize) gi = Avx.Xor(gi, sign);
                if (c.Decoupled) Avx.Store(p + i, Avx.Multiply(Avx.LoadVector256(p + i), decay));
                else if (c.CoupledDecay) gi = Fma.MultiplyAdd(Avx.LoadVector256(p + i), decay, gi);
                Avx.Store(m + i, Fma.MultiplyAdd(gi, omb1, Avx.Multiply(Avx.LoadVector256(m + i), b1)));
                var vi = Fma.MultiplyAdd(Avx.Multiply(omb2, gi), gi, Avx.Multiply(Avx.LoadVector256(v + i), b2));
                Avx.Store(v + i, vi);
                Avx.Store(roots + i, Avx.BlendVariable(vi, one, PositiveZeros(vi)));
            }
        }
        for (; i < n; i++)
        {
            float gi = g[i];
            if (c.Maximize) gi = -gi;
            if (c.Decoupled) p[i] *= c.Decay;
            else if (c.CoupledDecay) gi = MathF.FusedMultiplyAdd(p[i], c.Decay, gi);
            m[i] = MathF.FusedMultiplyAdd(gi, c.OneMinusBeta1, m[i] * c.Beta1);
            v[i] = MathF.FusedMultiplyAdd(c.OneMinusBeta2 * gi, gi, v[i] * c.Beta2);
            roots[i] = BitConverter.SingleToInt32Bits(v[i]) == 0 ? 1 : v[i];
        }
    }

    // root ← +0 where v is +0; denom ← root / √(bias correction 2) + ε (div, then add_ with alpha 1: one rounding each);
    // w ← w + (step·m) / denom (addcdiv_)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // optimised from the first step (no slow first tier for a hot loop)
    static void Update(float* p, float* m, float* v, float* roots, int n, in Constants c)
    {
        int i = 0;
        if (Vectorised)
        {
            var rc2 = Vector256.Create(c.RootCorrection2); var eps = Vector256.Create(c.Eps); var size = Vector256.Create(c.StepSize);
            for (; i + 8 <= n; i += 8)
            {
                var root = Avx.BlendVariable(Avx.LoadVector256(roots + i), Vector256<float>.Zero, PositiveZeros(Avx.LoadVector256(v + i)));
                var denom = Avx.Add(Avx.Divide(root, rc2), eps);
                var step = Avx.Divide(Avx.Multiply(size, Avx.LoadVector256(m + i)), denom);
                Avx.Store(p + i, Avx.Add(Avx.LoadVector256(p + i), step));
            }
        }
        for (; i < n; i++)
        {
            float root = BitConverter.SingleToInt32Bits(v[i]) == 0 ? 0 : roots[i];
            float denom = root / c.RootCorrection2 + c.Eps;
            p[i] += c.StepSize * m[i] / denom;
        }
    }

    /// <summary>The instructions the kernels use (AVX2 and FMA); without them the self-check keeps the fused path off.</summary>
    static bool Vectorised => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>All ones in the lanes that hold +0 (bit pattern 0; −0 is not one).</summary>
    static Vector256<float> PositiveZeros(Vector256<float> x) => Avx2.CompareEqual(x.AsInt32(), Vector256<int>.Zero).AsSingle();

    /// <summary>Square roots in place: MKL's (one call) or the hardware's, as libtorch's sqrt computes them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // optimised from the first step (no slow first tier for a hot loop)
    static void SquareRoots(float* x, int n, bool mkl)
    {
        if (mkl) { MklSqrt(n, x, x); return; }
        int i = 0;
        if (Vectorised)
            for (; i + 8 <= n; i += 8) Avx.Store(x + i, Avx.Sqrt(Avx.LoadVector256(x + i)));
        for (; i < n; i++) x[i] = MathF.Sqrt(x[i]);
    }

    static Roots Choose()
    {
        if (_roots != Roots.Unchecked) return _roots;
        lock (Gate)
        {
            if (_roots != Roots.Unchecked) return _roots;
            var (roots, why) = SelfCheck();
            Setting = why;
            _roots = roots;
            return roots;
        }
    }

    /// <summary>
    /// Which sqrt reproduces libtorch's: MKL's or the hardware's, on 65,536 random floats over the whole range (with
    /// zeros, swapped and put back as the fused step does, in calls of random length); then a dozen Adam steps with each option,
    /// fused against the libtorch operations. Off when neither matches, or without AVX2 and FMA.
    /// </summary>
    static (Roots, string) SelfCheck()
    {
        if (!Vectorised)
            return (Roots.Off, "libtorch operations (no AVX2/FMA: the fused step's rounding would not be libtorch's)");
        try
        {
            using var scope = NewDisposeScope();
            var random = new Random(20261204);
            var values = new float[65536];
            for (int i = 0; i < values.Length; i++)
                values[i] = i % 97 == 0 ? 0f : BitConverter.Int32BitsToSingle(random.Next(0, 0x7F800000));
            var expected = tensor(values, device: CPU).sqrt().data<float>().ToArray(); // host: the fused step runs on the CPU only
            foreach (var roots in new[] { Roots.Mkl, Roots.Hardware })
            {
                if (!SameRoots(values, expected, roots == Roots.Mkl, random)) continue;
                var failure = StepsDiffer(roots == Roots.Mkl);
                if (failure != null) return (Roots.Off, $"libtorch operations (fused step differs: {failure})");
                return (roots, roots == Roots.Mkl
                    ? "fused, MKL's vsSqrt as libtorch's sqrt (self-checked bit for bit)"
                    : "fused, hardware sqrt as libtorch's (self-checked bit for bit)");
            }
            return (Roots.Off, "libtorch operations (neither MKL's nor the hardware's sqrt gives libtorch's roots)");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return (Roots.Off, $"libtorch operations ({e.GetType().Name}: {e.Message})");
        }
    }

    static bool SameRoots(float[] values, float[] expected, bool mkl, Random random)
    {
        var x = values.Select(v => BitConverter.SingleToInt32Bits(v) == 0 ? 1f : v).ToArray(); // as Moments leaves them
        fixed (float* px = x)
            for (int start = 0; start < x.Length;)
            {
                int len = Math.Min(1 + random.Next(Block), x.Length - start);
                SquareRoots(px + start, len, mkl);
                start += len;
            }
        for (int i = 0; i < x.Length; i++)
        {
            float root = BitConverter.SingleToInt32Bits(values[i]) == 0 ? 0 : x[i]; // as Update puts them back
            if (BitConverter.SingleToInt32Bits(root) != BitConverter.SingleToInt32Bits(expected[i])) return false;
        }
        return true;
    }

    /// <summary>Null if 12 fused steps give the libtorch operations' moments and weights bit for bit, with each option; else what differed.</summary>
    static string? StepsDiffer(bool mkl)
    {
        var options = new (bool Maximize, bool Decoupled, double WeightDecay)[] { (false, false, 0), (true, false, 1e-2), (false, true, 5e-2), (true, true, 0) };
        foreach (var (maximize, decoupled, weightDecay) in options)
        {
            using var scope = NewDisposeScope();
            var generator = new Generator(7);
            const int n = 4099; // not a multiple of 8: the scalar tail too
            Tensor w = randn(n, generator: generator, device: CPU), m = zeros(n, device: CPU), v = zeros(n, device: CPU);
            Tensor w2 = w.clone(), m2 = m.clone(), v2 = v.clone();
            var mask = rand(n, generator: generator, device: CPU).GreaterThan(0.3);   // exact zeros in the gradients, as blank pixels leave
            for (long step = 1; step <= 12; step++)
            {
                var grad = randn(n, generator: generator, device: CPU).Times(1e-3).mul(mask);
                var c = new Constants(0.9, 0.999, 1e-8, 1e-2, weightDecay, maximize, decoupled, step);
                Run((float*)TensorData(w.Handle), (float*)TensorData(grad.Handle), (float*)TensorData(m.Handle), (float*)TensorData(v.Handle), n, c, mkl);
                using var adam = new AdamGroupStep(0.9, 0.999, 1e-8, 1e-2, weightDecay, amsgrad: false, maximize, decoupled);
                long s = step - 1; Tensor unused = null!;
                using (no_grad()) adam.StepWithOperations(w2, grad, ref s, m2, v2, ref unused);
            }
            if (!(SameBits(w, w2) && SameBits(m, m2) && SameBits(v, v2)))
                return $"maximize {maximize}, decoupled {decoupled}, weight decay {weightDecay}";
        }
        return null;
    }

    static bool SameBits(Tensor a, Tensor b) =>
        a.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits)); // host: the self-check's CPU tensors
}
