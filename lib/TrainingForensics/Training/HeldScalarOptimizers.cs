using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainingForensics.Training;

// TorchSharp 0.107's optimisers pass their hyper-parameters (β, ε, −lr, …) as Scalars made on the fly, several per
// parameter per step; such a Scalar can be freed by its finaliser while libtorch still reads it (see
// Native.HeldScalars). These subclasses do the same step, operation for operation and so bit for bit (tested
// against TorchSharp's), with every Scalar held until the call returns. Optimizers.Create builds them; the
// workload key still names the TorchSharp optimiser (TrainingLoop.OptimizerText).

/// <summary>The scalars of one optimiser step: each disposed when the step ends, after libtorch is done with it.</summary>
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
        double momentum = o.momentum!.Value, dampening = o.dampening!.Value, weightDecay = o.weight_decay!.Value, lr = o.LearningRate!.Value;
        bool nesterov = o.nesterov!.Value, maximize = o.maximize!.Value;
        using var s = new StepScalars();
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (weightDecay != 0) grad = grad.add(param, s.Of(weightDecay));
            if (momentum != 0)
            {
                var buf = state.momentum_buffer;
                if (buf is null)
                {
                    buf = grad.clone().detach().DetachFromDisposeScope();
                    state.momentum_buffer = buf;
                }
                else buf.mul_(s.Of(momentum)).add_(grad, s.Of(1 - dampening));
                grad = nesterov ? grad.add(buf, s.Of(momentum)) : buf;
                state.momentum_buffer = buf;
            }
            param.add_(grad, s.Of(maximize ? lr : -lr));
        }
    }, closure);
}

internal sealed class HeldScalarAdam : Adam
{
    public HeldScalarAdam(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        using var s = new StepScalars();
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (o.maximize!.Value) grad = -grad;
            state.step += 1;
            double weightDecay = o.weight_decay!.Value;
            if (weightDecay != 0) grad = grad.add(param, s.Of(weightDecay));
            AdamMoments.Update(s, param, grad, state.step, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.LearningRate!.Value, o.amsgrad!.Value,
                state.exp_avg, state.exp_avg_sq, ref state.max_exp_avg_sq, conjugate: true);
        }
    }, closure);
}

internal sealed class HeldScalarAdamW : AdamW
{
    public HeldScalarAdamW(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        using var s = new StepScalars();
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (o.maximize!.Value) grad = -grad;
            state.step += 1;
            double lr = o.LearningRate!.Value;
            param.mul_(s.Of(1 - lr * o.weight_decay!.Value));   // decoupled decay, before the moments as TorchSharp does
            AdamMoments.Update(s, param, grad, state.step, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, lr, o.amsgrad!.Value,
                state.exp_avg, state.exp_avg_sq, ref state.max_exp_avg_sq, conjugate: false);
        }
    }, closure);
}

internal static class AdamMoments
{
    /// <summary>Adam's moment update and step, as TorchSharp's Adam (conjugate: true) and AdamW (false) write it.</summary>
    public static void Update(StepScalars s, Tensor param, Tensor grad, long step, double beta1, double beta2, double eps, double lr, bool amsgrad,
        Tensor expAvg, Tensor expAvgSq, ref Tensor maxExpAvgSq, bool conjugate)
    {
        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        expAvg.mul_(s.Of(beta1)).add_(grad, s.Of(1 - beta1));
        expAvgSq.mul_(s.Of(beta2)).addcmul_(grad, conjugate ? grad.conj() : grad, s.Of(1 - beta2));
        Tensor second = expAvgSq;
        if (amsgrad)
        {
            var previous = maxExpAvgSq;
            maxExpAvgSq = maximum(previous, expAvgSq).DetachFromDisposeScope();
            previous.Dispose();
            second = maxExpAvgSq;
        }
        var denom = second.sqrt().div(s.Of(Math.Sqrt(biasCorrection2))).add_(s.Of(eps), s.Of(1L));
        param.addcdiv_(expAvg, denom, s.Of(-(lr / biasCorrection1)));
    }
}

internal sealed class HeldScalarRMSProp : RMSProp
{
    public HeldScalarRMSProp(IEnumerable<ParamGroup> groups, double lr) : base(groups, lr) { }

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = (Options)group.Options;
        double momentum = o.momentum!.Value, alpha = o.alpha!.Value, weightDecay = o.weight_decay!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value;
        using var s = new StepScalars();
        foreach (var param in group.Parameters)
        {
            var state = (State)_state[param.Handle];
            var grad = param.grad;
            if (grad is null) continue;
            if (o.maximize!.Value) grad = -grad;
            state.step += 1;
            if (weightDecay != 0) grad = grad.add(param, s.Of(weightDecay));
            state.square_avg.mul_(s.Of(alpha)).addcmul_(grad, grad, s.Of(1 - alpha));
            Tensor avg;
            if (o.centered!.Value)
            {
                var gradAvg = state.grad_avg;
                gradAvg.mul_(s.Of(alpha)).add_(grad, s.Of(1 - alpha));
                avg = state.square_avg.addcmul(gradAvg, gradAvg, s.Of(-1L)).sqrt_().add_(s.Of(eps), s.Of(1L));
            }
            else avg = state.square_avg.sqrt().add_(s.Of(eps), s.Of(1L));
            if (momentum > 0)
            {
                var buf = state.momentum_buffer;
                buf.mul_(s.Of(momentum)).addcdiv_(grad, avg, s.Of(1L));
                param.add_(buf, s.Of(-lr));
            }
            else param.addcdiv_(grad, avg, s.Of(-lr));
        }
    }, closure);
}
