using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

// TorchSharp 0.107's optimisers pass their hyper-parameters (β, ε, −lr, …) as Scalars made on the fly, several per
// parameter per step; such a Scalar can be freed by its finaliser while libtorch still reads it (see
// Native.HeldScalars). These subclasses do the same step, operation for operation and so bit for bit (tested
// against TorchSharp's), with every Scalar held until the call returns. Optimizers.Create builds them; the
// workload key still names the TorchSharp optimiser (TrainingLoop.OptimizerText).

/// <summary>The Scalars of one optimiser step: each disposed when the step ends, after libtorch is done with it.</summary>
internal sealed class StepScalars : IDisposable
{
    readonly List<Scalar> _held = new();
    public Scalar Of(double value) { var s = value.ToScalar(); _held.Add(s); return s; }
    public Scalar Of(long value) { var s = value.ToScalar(); _held.Add(s); return s; }
    public void Dispose() { foreach (var s in _held) s.Dispose(); _held.Clear(); }
}

internal sealed class HeldScalarSGD : SGD
{
    public HeldScalarSGD(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        double momentum = o.momentum!.Value, weightDecay = o.weight_decay!.Value, lr = o.LearningRate!.Value;
        bool nesterov = o.nesterov!.Value;
        // the group's constants, held for the whole step
        using var s = new StepScalars();
        Scalar decay = s.Of(weightDecay), keep = s.Of(momentum), dampened = s.Of(1 - o.dampening!.Value), update = s.Of(o.maximize!.Value ? lr : -lr);
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (weightDecay != 0) grad = grad.add(param, decay);
            if (momentum != 0)
            {
                var buf = state.momentum_buffer;
                if (buf is null)
                {
                    buf = grad.clone().detach().DetachFromDisposeScope();
                    state.momentum_buffer = buf;
                }
                else buf.mul_(keep).add_(grad, dampened);
                grad = nesterov ? grad.add(buf, keep) : buf;
                state.momentum_buffer = buf;
            }
            param.add_(grad, update);
        }
    }, closure);
}

internal sealed class HeldScalarAdam : Adam
{
    public HeldScalarAdam(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    // Adam's options and state are TorchSharp types of their own (no interface shared with AdamW's): read here, stepped in AdamGroupStep
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        AdamGroupStep.Run(group.Parameters, new AdamGroupStep(o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.LearningRate!.Value, o.weight_decay!.Value,
            o.amsgrad!.Value, o.maximize!.Value, decoupled: false),
            (adam, p) => { var st = (State)_state[p.Handle]; adam.Step(p, ref st.step, st.exp_avg, st.exp_avg_sq, ref st.max_exp_avg_sq); });
    }, closure);
}

internal sealed class HeldScalarAdamW : AdamW
{
    public HeldScalarAdamW(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    // AdamW's options and state are TorchSharp types of their own (no interface shared with Adam's): read here, stepped in AdamGroupStep
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        AdamGroupStep.Run(group.Parameters, new AdamGroupStep(o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.LearningRate!.Value, o.weight_decay!.Value,
            o.amsgrad!.Value, o.maximize!.Value, decoupled: true),
            (adam, p) => { var st = (State)_state[p.Handle]; adam.Step(p, ref st.step, st.exp_avg, st.exp_avg_sq, ref st.max_exp_avg_sq); });
    }, closure);
}

/// <summary>
/// One parameter group's Adam step as TorchSharp writes it: Adam with L2 added to the gradient (decoupled: false,
/// where it multiplies by grad.conj()), AdamW with the weights shrunk by 1 − lr·λ before the moments (decoupled: true).
/// The group's constants are held for the step; the bias corrections follow each parameter's own step count.
/// </summary>
internal sealed class AdamGroupStep : IDisposable
{
    readonly StepScalars _s = new();
    readonly double _beta1, _beta2, _lr, _weightDecay, _epsValue;
    readonly bool _amsgrad, _maximize, _decoupled;
    readonly Scalar _decay, _beta1S, _oneMinusBeta1, _beta2S, _oneMinusBeta2, _eps, _one;

    public AdamGroupStep(double beta1, double beta2, double eps, double lr, double weightDecay, bool amsgrad, bool maximize, bool decoupled)
    {
        (_beta1, _beta2, _lr, _weightDecay, _amsgrad, _maximize, _decoupled) = (beta1, beta2, lr, weightDecay, amsgrad, maximize, decoupled);
        _epsValue = eps;
        _decay = _s.Of(decoupled ? 1 - lr * weightDecay : weightDecay);
        (_beta1S, _oneMinusBeta1, _beta2S, _oneMinusBeta2) = (_s.Of(beta1), _s.Of(1 - beta1), _s.Of(beta2), _s.Of(1 - beta2));
        (_eps, _one) = (_s.Of(eps), _s.Of(1L));
    }

    public void Step(Parameter param, ref long step, Tensor expAvg, Tensor expAvgSq, ref Tensor maxExpAvgSq)
    {
        var grad = param.grad;
        if (grad is null) return;
        // the same numbers in one pass where the tensors allow it (FusedAdam: CPU float32, contiguous; not AMSGrad)
        if (!_amsgrad && FusedAdam.TryStep(param, grad, expAvg, expAvgSq,
                new FusedAdam.Constants(_beta1, _beta2, _epsValue, _lr, _weightDecay, _maximize, _decoupled, step + 1)))
        {
            step += 1;
            return;
        }
        StepWithOperations(param, grad, ref step, expAvg, expAvgSq, ref maxExpAvgSq);
    }

    /// <summary>The step as libtorch operations, one per line of TorchSharp's Adam/AdamW (the reference FusedAdam matches).</summary>
    internal void StepWithOperations(Tensor param, Tensor grad, ref long step, Tensor expAvg, Tensor expAvgSq, ref Tensor maxExpAvgSq)
    {
        if (_maximize) grad = -grad;
        step += 1;
        if (_decoupled) param.mul_(_decay);
        else if (_weightDecay != 0) grad = grad.add(param, _decay);
        double biasCorrection1 = 1 - Math.Pow(_beta1, step);
        double biasCorrection2 = 1 - Math.Pow(_beta2, step);
        expAvg.mul_(_beta1S).add_(grad, _oneMinusBeta1);
        expAvgSq.mul_(_beta2S).addcmul_(grad, _decoupled ? grad : grad.conj(), _oneMinusBeta2);
        Tensor second = expAvgSq;
        if (_amsgrad)
        {
            var previous = maxExpAvgSq;
            maxExpAvgSq = maximum(previous, expAvgSq).DetachFromDisposeScope();
            previous.Dispose();
            second = maxExpAvgSq;
        }
        var denom = second.sqrt().div(_s.Of(Math.Sqrt(biasCorrection2))).add_(_eps, _one);
        param.addcdiv_(expAvg, denom, _s.Of(-(_lr / biasCorrection1)));
    }

    /// <summary>Steps every parameter of a group with <paramref name="adam"/>, then frees its Scalars.</summary>
    public static void Run(IEnumerable<Parameter> parameters, AdamGroupStep adam, Action<AdamGroupStep, Parameter> stepWithState)
    {
        using (adam)
            foreach (var param in parameters) stepWithState(adam, param);
    }

    public void Dispose() => _s.Dispose();
}

internal sealed class HeldScalarRMSProp : RMSProp
{
    public HeldScalarRMSProp(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        double momentum = o.momentum!.Value, alpha = o.alpha!.Value, weightDecay = o.weight_decay!.Value, lr = o.LearningRate!.Value;
        bool maximize = o.maximize!.Value, centered = o.centered!.Value;
        // the group's constants, held for the whole step
        using var s = new StepScalars();
        Scalar decay = s.Of(weightDecay), smoothing = s.Of(alpha), oneMinusAlpha = s.Of(1 - alpha), eps = s.Of(o.eps!.Value), one = s.Of(1L),
            minusOne = s.Of(-1L), keep = s.Of(momentum), update = s.Of(-lr);
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (maximize) grad = -grad;
            state.step += 1;
            if (weightDecay != 0) grad = grad.add(param, decay);
            state.square_avg.mul_(smoothing).addcmul_(grad, grad, oneMinusAlpha);
            Tensor avg;
            if (centered)
            {
                var gradAvg = state.grad_avg;
                gradAvg.mul_(smoothing).add_(grad, oneMinusAlpha);
                avg = state.square_avg.addcmul(gradAvg, gradAvg, minusOne).sqrt_().add_(eps, one);
            }
            else avg = state.square_avg.sqrt().add_(eps, one);
            if (momentum > 0)
            {
                var buf = state.momentum_buffer;
                buf.mul_(keep).addcdiv_(grad, avg, one);
                param.add_(buf, update);
            }
            else param.addcdiv_(grad, avg, update);
        }
    }, closure);
}
