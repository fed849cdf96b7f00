"""The doctor on real graphs: Keras functional and subclassed models, Flax NNX and Linen modules, against PyTorch.

The cross-framework tests run tests/doctor/_graph_models.py once, in a subprocess with ``KERAS_BACKEND=jax`` (Keras
fixes its backend at its first import): one ResNet-style net (residual add, concatenation) and one Transformer
block (attention, MLP, two residual adds, LayerNorm), with the same weights, batch and targets in every framework.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weightinit.common.errors import InitializerValueError
from weightinit.doctor.graph import GNode, inferred_grads, link_calls

HERE = Path(__file__).parent
NEEDED = ("torch", "keras", "jax", "flax")


@pytest.fixture(scope="module")
def reports():
    for mod in NEEDED:
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(HERE / "_graph_models.py")], capture_output=True, text=True, env=env,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


EXPECTED = {  # the faults _graph_models.py builds in, as (finding, layer)
    ("resnet", "healthy"): set(),
    ("resnet", "broken"): {("dead", "fc1_relu"), ("saturated", "side_tanh")},
    ("transformer", "healthy"): set(),
    ("transformer", "broken"): {("exploding_activations", "fc2")},
    ("transformer", "causal"): set(),  # the healthy weights, attention under a causal mask
}


@pytest.mark.parametrize("arch,variant", sorted(EXPECTED))
def test_same_findings_in_every_framework(reports, arch, variant):
    by_fw = reports[arch][variant]
    for fw, s in by_fw.items():
        got = {(k, layer) for k, layer, sev in s["flags"] if sev != "info"}
        assert got == EXPECTED[arch, variant], (fw, s["flags"])
        assert [f[:2] for f in s["flags"]] == [f[:2] for f in by_fw["torch"]["flags"]], fw


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
@pytest.mark.parametrize("variant", ["healthy", "broken"])
def test_same_numbers_as_torch_layer_by_layer(reports, arch, variant):
    # same weights and batch: the measured std, the relative weight gradient (same MSE targets) and the predicted
    # second moment agree with the torch path at every layer both report
    torch_layers = {s["name"]: s for s in reports[arch][variant]["torch"]["layers"]}
    edges, ops = reports[arch][variant]["keras"]["edges"], reports[arch][variant]["keras"]["ops"]
    after_add = set()  # nodes at or after a residual add (Keras' functional graph names the torch modules' way)
    for name in edges:  # (edges are in graph order)
        if ops[name] == "add" or any(i in after_add for i in edges[name]):
            after_add.add(name)
    assert ({"res1_relu", "head"} <= after_add and "side" not in after_add) or arch != "resnet", after_add
    for fw, rep in reports[arch][variant].items():
        common = [s for s in rep["layers"] if s["name"] in torch_layers]
        assert len(common) >= 6, (fw, [s["name"] for s in rep["layers"]])
        for s in common:
            t = torch_layers[s["name"]]
            # q_pred: the same rules (analytic.linear_moments with the measured row sums, moment_map, norms,
            # attention), to rounding; at and after a residual add, the same cross moment too: the branches'
            # Jacobian term of analytic.residual_cross, measured by forward-mode probes (torch's fx graph; jax.jvp on
            # Keras' jax backend, NNX and Linen) with the same probes (the in-expectation moment is 1.3% to 4.6% off
            # here: test_the_measured_cross_moment_is_what_makes_them_agree)
            q_tol = 1e-5 if s["name"] in after_add else 1e-6
            # The broken ResNet's branch is exactly zero (dead ReLU), so relu(h + 0) and h + 0 are the same values:
            # a capture from values alone cannot see that relu, and its predictions after the add are not compared
            blind = variant == "broken" and fw in ("keras_subclassed", "nnx", "linen") and s["name"] in after_add
            for key, rtol in (("std", 1e-3), ("rel_grad", 1e-3), ("q_pred", q_tol)):
                if t[key] is None or (key == "rel_grad" and t["kind"] in ("LayerNorm",)) or (key == "q_pred" and blind):
                    continue  # (torch names LayerNorm's scale `weight`, the others `scale`/`gamma`)
                assert s[key] is not None and math.isclose(s[key], t[key], rel_tol=rtol, abs_tol=1e-7), (
                    fw, s["name"], key, s[key], t[key])  # fmt: skip


def test_cnn_padding_and_max_pooling_same_numbers_as_torch(reports):
    # zero-padded convs ("same", stride 2 with padding 1) and a max pooling after a relu: the predicted second moment
    # of every weight layer and of the pooling (Flax: nn.max_pool found by value) is torch.fx's, to rounding
    fx = reports["cnn"]["healthy"]["torch"]["fx"]
    for fw in ("keras", "nnx", "linen"):
        r = reports["cnn"]["healthy"][fw]
        pools = [n for n in r["edges"] if r["ops"][n] == "maxpool"]
        assert len(pools) == 1 and not any("not a recorded tensor" in n for n in r["notes"]), (fw, r["ops"], r["notes"])
        for node, name in (("conv1", "conv1"), ("conv2", "conv2"), (pools[0], "pool"), ("head", "head")):
            assert math.isclose(r["pred"][node][1], fx[name], rel_tol=1e-6), (fw, node, r["pred"][node], fx[name])
    # (the max pooling is no identity here: 2.6x its input's second moment; the padding rules' and the pooling's
    # accuracy against Monte Carlo: tests/doctor/test_cnn_rules.py)
    assert fx["pool"] > 2 * fx["relu2"]


def test_same_numbers_as_torch_layer_by_layer_with_a_causal_mask(reports):
    # torch attn_mask, Keras use_causal_mask=True, Flax mask=make_causal_mask: the same keys per query everywhere
    test_same_numbers_as_torch_layer_by_layer(reports, "transformer", "causal")


GRAPH_FWS = {"resnet": ["keras", "keras_subclassed", "nnx", "linen"], "transformer": ["keras", "nnx", "linen"]}


def _keras_on(backend: str) -> dict:
    for mod in (*NEEDED, backend):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, str(HERE / "_graph_models.py"), "keras"], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def keras_torch():
    return _keras_on("torch")


@pytest.fixture(scope="module")
def keras_tf():
    return _keras_on("tensorflow")


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_keras_on_torch_and_tensorflow_backends_gives_the_same_report(request, reports, backend):
    # the graph's backward pass on Keras' torch backend (autograd) and tensorflow backend (tf.GradientTape), with zero
    # perturbations at every node, and the forward-mode cross moments (torch.func.jvp, tf.autodiff.ForwardAccumulator)
    # against the jax backend's, on the same model, weights and batch
    got = request.getfixturevalue("keras_torch" if backend == "torch" else "keras_tf")
    for fw in ("keras", "keras_subclassed"):
        want = reports["resnet"]["healthy"][fw]
        assert f"({backend})" in got[fw]["framework"] and "(jax)" in want["framework"]
        assert not any("gradients not measured" in n for n in got[fw]["notes"]), got[fw]["notes"]
        assert got[fw]["cross"].keys() == want["cross"].keys() and not got[fw]["cross_notes"], got[fw]
        assert [s["name"] for s in got[fw]["layers"]] == [s["name"] for s in want["layers"]]
        for a, b in zip(got[fw]["layers"], want["layers"]):
            for key in ("std", "q_pred", "rel_grad", "grad_std"):
                if b[key] is None:
                    assert a[key] is None, (fw, a["name"], key)
                else:
                    assert math.isclose(a[key], b[key], rel_tol=1e-4), (fw, a["name"], key, a[key], b[key])
        for n, (src, jd) in want["cross"].items():
            g_src, g_jd = got[fw]["cross"][n]
            assert g_src == src and math.isclose(g_jd, jd, rel_tol=1e-4, abs_tol=1e-7), (fw, n, g_jd, jd)


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_keras_two_inputs_two_outputs_conv_norm_pooling(request, backend):
    from weightinit.doctor.analytic import avgpool_moments

    r = request.getfixturevalue("keras_torch" if backend == "torch" else "keras_tf")["two_in_two_out"]
    assert r["edges"] == {"img": [], "vec": [], "conv": ["img"], "bn": ["conv"], "conv_relu": ["bn"],
                          "maxp": ["conv_relu"], "gap": ["conv_relu"], "vec_fc": ["vec"], "flat": ["maxp"],
                          "cat": ["gap", "vec_fc"], "out2": ["flat"], "out1": ["cat"]}  # fmt: skip
    assert {k: r["ops"][k] for k in ("bn", "gap", "maxp", "cat", "flat")} == {
        "bn": "norm", "gap": "avgpool", "maxp": "maxpool", "cat": "concat", "flat": "identity"}  # fmt: skip
    assert np.allclose(r["pred"]["gap"], avgpool_moments(*r["pred"]["conv_relu"], 6 * 6), rtol=1e-12)
    assert math.isfinite(r["loss"]) and not r["flags"]  # the probe losses of both outputs, summed
    assert all(s["grad_std"] is not None for s in r["layers"])
    assert all(s["rel_grad"] is not None for s in r["layers"] if s["name"] in ("conv", "vec_fc", "out1", "out2"))
    # LSUV in graph order: each kernel's output variance within tol (0.1) of 1
    assert set(r["scales"]) == {"conv.kernel", "vec_fc.kernel", "out1.kernel", "out2.kernel"}
    after = {s["name"]: s["std"] ** 2 for s in r["after"]["layers"]}
    assert all(abs(after[k] - 1) < 0.1 for k in ("conv", "vec_fc", "out1", "out2")), after


MERGES = {  # node -> its inputs, per framework family (the names a hook capture gives inferred nodes)
    ("resnet", "keras"): {"res1": ["stem_relu", "fc2"], "cat": ["res1_relu", "side_tanh"]},
    ("resnet", "hooks"): {"add": ["stem_relu", "fc2"], "concat": ["add_relu", "side_tanh"]},
    # attention as the recorded torch graph has nn.MultiheadAttention: q/k/v projections, the mixing, the output
    # projection (the call's own node)
    ("transformer", "keras"): {"res1": ["x", "attn"], "attn.q": ["ln1"], "attn.k": ["ln1"], "attn.v": ["ln1"],
                               "attn.attention": ["attn.q", "attn.k", "attn.v"], "attn": ["attn.attention"],
                               "res2": ["res1", "fc2"], "ln2": ["res1"]},
    ("transformer", "hooks"): {"add": ["input", "attn"], "attn.q": ["ln1"], "attn.k": ["ln1"], "attn.v": ["ln1"],
                               "attn.attention": ["attn.q", "attn.k", "attn.v"], "attn": ["attn.attention"],
                               "add#2": ["add", "fc2"], "ln2": ["add"]},
}  # fmt: skip


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
def test_the_measured_cross_moment_is_what_makes_them_agree(reports, arch):
    # at every add, the in-expectation cross moment (independence rule) is far outside the tolerance the measured
    # one meets, in torch and in each graph: the agreement above is the Jacobian term's, not the rule's
    rep = reports[arch]["healthy"]
    fx, fx_exp = rep["torch"]["fx"], rep["torch"]["fx_expected"]
    fx_adds = [k for k in fx if k.startswith("add")]
    assert min(abs(fx_exp[k] / fx[k] - 1) for k in fx_adds) > 0.01, (fx, fx_exp)
    for fw in GRAPH_FWS[arch]:
        r = rep[fw]
        adds = [n for n in r["edges"] if r["ops"][n] == "add"]
        assert not r["cross_notes"] and set(r["cross"]) == set(adds), (fw, r["cross"], r["cross_notes"])
        for n, k in zip(adds, fx_adds):
            assert math.isclose(r["pred"][n][1], fx[k], rel_tol=1e-5), (fw, n, r["pred"][n], fx[k])
            assert math.isclose(r["pred_expected"][n][1], fx_exp[k], rel_tol=1e-5), (fw, n)
            assert abs(r["pred"][n][1] / r["pred_expected"][n][1] - 1) > 0.01, (fw, n)
    # the report's numbers are the measured ones (doctor_graph measures by default)
    for fw in GRAPH_FWS[arch]:
        got = {s["name"]: s["q_pred"] for s in rep[fw]["layers"]}
        assert all(math.isclose(got[n], rep[fw]["pred"][n][1], rel_tol=1e-12) for n in rep[fw]["cross"]), fw


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
def test_each_framework_reports_the_branches_not_a_chain(reports, arch):
    from weightinit.doctor.analytic import add_moments, concat_moments, residual_cross

    fx = reports[arch]["healthy"]["torch"]["fx"]
    for fw in GRAPH_FWS[arch]:
        rep = reports[arch]["healthy"][fw]
        edges, pred, ops = rep["edges"], rep["pred"], rep["ops"]
        merges = MERGES.get((arch, fw)) or MERGES[arch, "keras" if fw == "keras" else "hooks"]
        for node, ins in merges.items():
            assert edges[node] == ins, (fw, node, edges)
        assert "from the functional graph" in rep["notes"][0] if fw == "keras" else "from the layer calls" in \
            rep["notes"][0], rep["notes"]  # fmt: skip
        names = [s["name"] for s in rep["layers"]]
        for node in merges:
            assert node in names, (fw, node, names)  # the report has a row per merge
            if ops[node] == "add":  # the moment rules of weightinit.doctor.analytic, with every input
                a, b = (tuple(pred[i]) for i in edges[node])
                src, jd = rep["cross"][node]  # the Jacobian term: E[ab] = mu_a mu_b + v_src jd (Stein's lemma)
                v_src = pred[src][1] - pred[src][0] ** 2
                assert src in edges[node] and abs(jd) < 0.5, (fw, node, src, jd)
                assert np.allclose(pred[node], add_moments(a, b, residual_cross(a, b) + v_src * jd), rtol=1e-12)
            if ops[node] == "concat":
                sizes = [np.prod(next(s["shape"] for s in rep["layers"] if s["name"] == i)[1:]) for i in edges[node]]
                want = concat_moments([(n, *pred[i]) for n, i in zip(sizes, edges[node])])[:2]
                assert np.allclose(pred[node], want, rtol=1e-12)
        adds = [n for n in merges if ops[n] == "add"]
        fx_adds = [v for k, v in fx.items() if k.startswith("add")]  # torch.fx's own graph: the same predictions
        assert len(adds) == len(fx_adds) and np.allclose([pred[n][1] for n in adds], fx_adds, rtol=1e-5), (fw, fx)


ATTENTION_NODES = {"attn.q": "weight", "attn.k": "weight", "attn.v": "weight", "attn.attention": "mix",
                   "attn": "weight"}  # fmt: skip
ATTENTION_ARGS = {"keras": ["ln1", "ln1"], "nnx": ["ln1"], "linen": ["ln1", "ln1"]}  # attn(a, a), attn(a), attn(a, a)


@pytest.mark.parametrize("variant", ["healthy", "broken", "causal"])
def test_attention_has_the_recorded_torch_graphs_nodes_and_numbers(reports, variant):
    # Keras MultiHeadAttention, NNX MultiHeadAttention and Linen MultiHeadDotProductAttention as the recorded torch
    # graph has nn.MultiheadAttention: the same nodes (q/k/v projections, the mixing, the output projection) with
    # the same predicted second moments (the projections' measured kernels, the score spread, the token Gram), to
    # rounding; the call's own arguments are kept for its tangents and gradients
    fx = reports["transformer"][variant]["torch"]["fx"]
    for fw in GRAPH_FWS["transformer"]:
        r = reports["transformer"][variant][fw]
        assert {n: r["ops"].get(n) for n in ATTENTION_NODES} == ATTENTION_NODES, (fw, r["ops"])
        assert r["args"] == {"attn": ATTENTION_ARGS[fw]}, (fw, r["args"])  # the one call placed as several nodes
        masks = np.asarray(r["masks"]["attn.attention"])  # the distinct (T, T) masks of the allowed keys
        want = np.ones((1, masks.shape[-1], masks.shape[-1]), bool)
        assert np.array_equal(masks, np.tril(want) if variant == "causal" else want), (fw, variant, masks)
        for n in ATTENTION_NODES:  # (the recorded graph names the operation's nodes, the module is an alias)
            t = n.replace("attn", "multi_head_attention")
            assert math.isclose(r["pred"][n][1], fx[t], rel_tol=1e-6), (fw, n, r["pred"][n], fx[t])


# ------------------------------------------------------------------------------------------ in process (flax)


def _nnx():
    pytest.importorskip("flax.nnx")
    sys.path.insert(0, str(HERE))
    try:
        import _graph_models as gm
    finally:
        sys.path.remove(str(HERE))
    return gm


def test_nnx_graph_gradients_match_nnx_grad():
    gm = _nnx()
    import jax.numpy as jnp
    from flax import nnx

    import weightinit as wi

    m = gm.nnx_resnet(gm.resnet_weights("healthy"))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, gm.D)).astype(np.float32)
    t = rng.standard_normal((32, gm.OUT)).astype(np.float32)
    rep = wi.doctor(m, x, targets=t)
    grads = nnx.grad(lambda m: jnp.mean((m(jnp.asarray(x)) - jnp.asarray(t)) ** 2))(m)
    for name in ("stem", "fc1", "fc2", "side", "head"):
        for p in ("kernel", "bias"):
            want = float(np.linalg.norm(np.asarray(grads[name][p].get_value(), np.float64)))
            assert math.isclose(rep.layer(name).grad_norms[p], want, rel_tol=1e-5), (name, p)
    # dL/dy at the output is the MSE gradient; at the (inferred) add it is what reaches fc2's output through relu
    y = np.asarray(m(jnp.asarray(x)), np.float64)
    assert math.isclose(rep.layer("head").grad_std, float(np.std(2 * (y - t) / y.size)), rel_tol=1e-5)
    assert all(math.isfinite(rep.layer(n).grad_std) for n in ("add", "add_relu", "concat", "side_tanh"))


def test_nnx_graph_fix_lsuv_and_analytic_hit_their_targets():
    gm = _nnx()
    import weightinit as wi

    x = np.random.default_rng(6).standard_normal((512, gm.D)).astype(np.float32)
    w = gm.resnet_weights("healthy")
    w = {k: (v[0] * 0.1, v[1]) for k, v in w.items()}  # 10x too small: the signal shrinks
    for mode in ("lsuv", "analytic"):
        m = gm.nnx_resnet(w)
        f = wi.fix(m, mode, x)
        assert set(f.scales) == {f"{k}.kernel" for k in w}, f.scales
        after = {s.name: s.q for s in f.after.layers}
        # fc2 feeds the residual add of two tensors: its target is 1/2, so the sum has unit second moment
        for name, want in (("stem", 1.0), ("fc1", 1.0), ("fc2", 0.5), ("side", 1.0), ("head", 1.0)):
            assert abs(after[name] / want - 1) < 0.12, (mode, name, after[name])


def test_nnx_graph_fix_rescales_the_attention_projections():
    # the q/k/v and output projections are weight nodes with their kernels: LSUV and the analytic fix rescale them
    # (read as (E, heads * head dim) / (heads * head dim, E) matrices and written back in Flax's shapes)
    gm = _nnx()
    import weightinit as wi

    x = np.random.default_rng(6).standard_normal((256, gm.T, gm.E)).astype(np.float32)
    w = gm.transformer_weights("healthy")
    w = {k: (v[0] * 0.2, v[1]) if isinstance(v, tuple) else v for k, v in w.items()}  # 5x too small
    for mode in ("lsuv", "analytic"):
        m = gm.nnx_transformer(w)
        shapes = {r: getattr(m.attn, r).kernel.get_value().shape for r in ("query", "key", "value", "out")}
        f = wi.fix(m, mode, x)
        assert {"attn.q.kernel", "attn.k.kernel", "attn.v.kernel", "attn.kernel"} <= set(f.scales), f.scales
        assert {r: getattr(m.attn, r).kernel.get_value().shape for r in shapes} == shapes
        after = {s.name: s.q for s in f.after.layers}
        # attn (the output projection) feeds the residual add of two tensors: its target is 1/2
        for name, want in (("attn.q", 1.0), ("attn.k", 1.0), ("attn.v", 1.0), ("attn", 0.5)):
            assert abs(after[name] / want - 1) < 0.12, (mode, name, after[name])


def _nnx_skip(branch: str = "identity"):
    """NNX ``h = relu(fc(x))``, then ``h + fc2(h)`` with ``fc2`` the identity (``branch="bn"``: ``h + bn(fc2(h))``;
    ``"callback"``: ``h + cb(fc2(h))``, ``cb`` a host callback, which has no forward mode): the skip's source is found
    by value (the relu between calls), and the branch is a function of it, so ``E[ab]`` is of order 1 where the
    independence rule says ``mu_h * mu_b``."""
    import jax.numpy as jnp
    from flax import nnx

    import jax

    class Callback(nnx.Module):
        def __call__(self, x):
            return jax.pure_callback(np.tanh, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc, self.fc2 = nnx.Linear(32, 32, rngs=rngs), nnx.Linear(32, 32, rngs=rngs)
            self.post = {"bn": lambda: nnx.BatchNorm(32, rngs=rngs), "callback": Callback}.get(branch, lambda: None)()
            self.fc2.kernel.set_value(jnp.eye(32))

        def __call__(self, x):
            h = jax.nn.relu(self.fc(x))
            b = self.fc2(h)
            return h + (self.post(b) if self.post is not None else b)

    return Net(nnx.Rngs(0))


@pytest.mark.parametrize("branch", ["identity", "bn"])
def test_nnx_measured_cross_moment_against_the_sample(branch):
    _nnx()
    from flax import nnx

    from weightinit.doctor.backends.flax import adapter
    from weightinit.doctor.graph import doctor_graph, measured_cross

    x = np.random.default_rng(7).standard_normal((512, 32)).astype(np.float32)
    m = _nnx_skip(branch)
    stats = [np.asarray(v.get_value()).copy() for _, v in nnx.to_flat_state(nnx.state(m, nnx.BatchStat))]
    gm = adapter(m)
    rep = doctor_graph(gm, x)
    # the forward-mode replay (and the backward pass) ran on copies: the model's BatchNorm statistics are untouched
    assert all(np.array_equal(a, np.asarray(v.get_value()))
               for a, (_, v) in zip(stats, nnx.to_flat_state(nnx.state(m, nnx.BatchStat))))  # fmt: skip
    assert not any("not measured" in n or "could not be differentiated" in n for n in rep.notes), rep.notes
    g = gm.capture(x)
    i = next(k for k, n in enumerate(g.nodes) if n.op == "add")
    src, jd = measured_cross(gm, g, x)(i)
    # (fc2 is the identity, so its output has h's values: by value, the skip may be read as either; same tangents)
    assert g.nodes[src].name == "fc_relu" or (branch == "bn" and g.nodes[src].name == "fc2"), g.nodes[src].name
    if branch == "identity":  # b = h: the Stein factor tr(J_b)/n is 1
        assert abs(jd - 1) < 1e-5, jd
    y = np.asarray(m(x), np.float64)  # E[y^2] of the sample, and its standard error
    se = float(np.std(np.mean(y * y, axis=1)) / np.sqrt(len(y)))
    q_meas, q_exp = rep.layer("add").q_pred, doctor_graph(gm, x, cross="expected").layer("add").q_pred
    assert abs(q_meas - float(np.mean(y * y))) < 5 * se + 0.05 * q_meas, (q_meas, np.mean(y * y), se)
    assert q_meas > 1.4 * q_exp  # the independence rule misses the whole Jacobian term
    with pytest.raises(InitializerValueError, match="`cross` must be 'measured' or 'expected'; received cross='x'"):
        doctor_graph(gm, x, cross="x")


def test_nnx_a_call_without_forward_mode_falls_back_with_a_note():
    _nnx()
    from weightinit.doctor.backends.flax import adapter
    from weightinit.doctor.graph import doctor_graph

    x = np.random.default_rng(8).standard_normal((64, 32)).astype(np.float32)
    gm = adapter(_nnx_skip("callback"))  # jax.pure_callback has no JVP rule
    rep = doctor_graph(gm, x)
    assert any("add: the branches' Jacobians could not be differentiated forward" in n for n in rep.notes), rep.notes
    assert rep.layer("add").q_pred == doctor_graph(gm, x, cross="expected").layer("add").q_pred


def test_linen_needs_bound_module():
    pytest.importorskip("flax.linen")
    import flax.linen as nn

    import weightinit as wi
    from weightinit.common.errors import InitializerTypeError

    with pytest.raises(InitializerTypeError, match="bind"):
        wi.doctor(nn.Dense(4), np.zeros((2, 3), np.float32))


# ------------------------------------------------------------------------------------------ link_calls (numpy)


def _rec(name, kind, op, args, out, **kw):
    return GNode(name, kind, op, out=np.asarray(out, np.float64), **kw), args, out


def test_link_calls_finds_activations_adds_and_concatenations_by_value():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4))
    w1, w2, w3 = (rng.standard_normal((4, 4)) for _ in range(3))
    a = x @ w1  # fc1(x)
    b = np.maximum(a, 0) @ w2  # fc2(relu(fc1 x))
    h = np.tanh(x + b)  # tanh(x + fc2(...))
    c = np.concatenate([h, a], axis=-1) @ np.vstack([w3, w3])  # head(concat(h, a))
    recs = [
        _rec("fc1", "Linear", "weight", [x], a),
        _rec("fc2", "Linear", "weight", [np.maximum(a, 0)], b),
        _rec("head", "Linear", "weight", [np.concatenate([h, a], axis=-1)], c),
    ]
    g = link_calls([("input", x)], recs, [c])
    names = [n.name for n in g.nodes]
    assert names == ["input", "fc1", "fc1_relu", "fc2", "add", "add_tanh", "concat", "head"], names
    idx = {n: i for i, n in enumerate(names)}
    assert g.nodes[idx["fc1"]].inputs == [idx["input"]]  # by identity
    assert g.nodes[idx["add"]].inputs == [idx["input"], idx["fc2"]]
    assert g.nodes[idx["concat"]].inputs == [idx["add_tanh"], idx["fc1"]]
    assert g.outputs == [idx["head"]] and not g.notes


def test_link_calls_prefers_the_unconsumed_branch_and_names_what_it_cannot_match():
    rng = np.random.default_rng(1)
    h = np.maximum(rng.standard_normal((8, 4)), 0)
    dead = np.zeros((8, 4))  # a branch that is exactly zero: h + dead equals h
    recs = [_rec("stem", "Linear", "weight", [h], h), _rec("fc", "Linear", "weight", [h], dead),
            _rec("head", "Linear", "weight", [h + dead], h)]  # fmt: skip
    g = link_calls([("input", h.copy())], recs, [h * 3.0])
    kinds = [n.op for n in g.nodes]
    assert "add" in kinds, kinds  # not read as the identity of stem's output
    assert kinds[-1] == "opaque" and g.notes and "not a recorded tensor" in g.notes[-1]


def test_inferred_grads_flow_back_through_concat_add_and_activation():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3))
    recs = [_rec("fc", "Linear", "weight", [x], x * 2.0), _rec("head", "Linear", "weight",
            [np.concatenate([np.tanh(x + x * 2.0), x * 2.0], -1)], np.ones((4, 1)))]  # fmt: skip
    g = link_calls([("input", x)], recs, [recs[-1][2]])
    gin = rng.standard_normal((4, 6))
    head = next(n for n in g.nodes if n.name == "head")
    head.arg_grads, head.grad_y = [gin], np.ones((4, 1))
    next(n for n in g.nodes if n.name == "fc").grad_y = np.zeros((4, 3))
    inferred_grads(g, [np.ones((4, 1))])
    by = {n.name: n for n in g.nodes}
    assert np.allclose(by["concat"].grad_y, gin)
    assert np.allclose(by["add_tanh"].grad_y, gin[:, :3])
    assert np.allclose(by["add"].grad_y, gin[:, :3] * (1 - np.tanh(3 * x) ** 2), rtol=1e-5)


def test_link_calls_finds_max_and_average_pooling_by_value():
    # Flax's nn.max_pool / avg_pool and jnp.mean are functions, not module calls: found between recorded calls by
    # value, a max pooling of relu(h) as relu's node then the pooling (the max is taken before a monotone activation)
    from weightinit.doctor.graph import _pool_np

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 5, 3))
    h = x * 2.0  # conv(x), recorded
    p = np.maximum(h, 0).reshape(4, 5, 5, 3)
    mp = np.full((4, 3, 3, 3), -np.inf)  # 3x3 windows, stride 2, padding "SAME" (1 on each side) by brute force
    for i in range(3):
        for j in range(3):
            mp[:, i, j] = p[:, max(2 * i - 1, 0) : 2 * i + 2, max(2 * j - 1, 0) : 2 * j + 2].max((1, 2))
    gap = mp.mean((1, 2))
    recs = [_rec("conv", "Conv", "weight", [x], h), _rec("fc", "Dense", "weight", [mp], mp[..., :2]),
            _rec("head", "Dense", "weight", [gap], gap[:, :1])]  # fmt: skip
    g = link_calls([("input", x)], recs, [recs[-1][2]])
    assert [(n.name, n.op) for n in g.nodes] == [("input", "input"), ("conv", "weight"), ("conv_relu", "act"),
                                                 ("max_pool", "maxpool"), ("fc", "weight"), ("avg_pool", "avgpool"),
                                                 ("head", "weight")], [(n.name, n.op) for n in g.nodes]  # fmt: skip
    mpn = g.nodes[3]
    assert mpn.inputs == [2] and g.nodes[5].inputs == [3] and not g.notes
    assert mpn.window[0].tolist() == [4.0, 6.0, 9.0]  # border windows of 2x2 and 2x3 values, inner 3x3
    # the tangent of a max pooling is the input's tangent at each window's argmax (no ties: before the relu)
    t = rng.standard_normal(h.shape)
    y, ty = mpn.pool_fn(h, t)
    eps = 1e-6
    fd = (_pool_np(h + eps * t, "max", 3, 2, [(1, 1), (1, 1)])[0] - y) / eps
    assert np.allclose(np.maximum(y, 0), mp) and np.allclose(ty, fd, atol=1e-4)


# ------------------------------------------------------------------------------------------ attention (flax, Monte Carlo)

AN, AT, AB = 128, 8, 256  # width, tokens, examples


def _nnx_causal_blocks():
    """Two pre-LN blocks ``h = h + attn(ln(h), mask=causal)`` (4 heads, NNX defaults: LeCun-normal kernels)."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.ln1, self.ln2 = nnx.LayerNorm(AN, rngs=rngs), nnx.LayerNorm(AN, rngs=rngs)
            self.attn1 = nnx.MultiHeadAttention(4, AN, decode=False, rngs=rngs)
            self.attn2 = nnx.MultiHeadAttention(4, AN, decode=False, rngs=rngs)

        def __call__(self, x):
            mask = nnx.make_causal_mask(x[..., 0])
            h = x + self.attn1(self.ln1(x), mask=mask)
            return h + self.attn2(self.ln2(h), mask=mask)

    return Net(nnx.Rngs(0))


def test_nnx_causal_attention_predictions_match_the_measurement(graph_per_example_q):
    """The Keras/Flax graphs' attention is the recorded torch graph's rule (q/k/v projections, the causal mask's
    keys, the score spread, the token Gram the first attention leaves for the second), checked by Monte Carlo as
    tests/doctor/test_recorded_graph.py checks torch: every node within 5 standard errors of the mean over
    ``AB`` independent examples plus ``1/sqrt(AN)`` relative (the mean-field error of one draw of the weights at
    width ``AN``: 8.8%).  What it rejects: uniform averaging over independent tokens (the rule the graphs had before,
    1/8 of the value variance where the causal mask gives ``H_8/8``, 2.7x that)."""
    _nnx()
    from weightinit.doctor.backends.flax import adapter
    from weightinit.doctor.graph import _x_moments, propagate

    x = np.random.default_rng(11).standard_normal((AB, AT, AN)).astype(np.float32)
    gm = adapter(_nnx_causal_blocks())
    g = gm.capture(x)
    assert [n.name for n in g.nodes if n.op == "mix"] == ["attn1.attention", "attn2.attention"]
    mix = g.nodes[[n.name for n in g.nodes].index("attn1.attention")]
    assert np.array_equal(mix.attn[3], np.tril(np.ones((1, AT, AT), bool)))  # the distinct masks: the causal one
    per = graph_per_example_q(g)

    def failures(pred):
        bad = []
        for i, n in enumerate(g.nodes):
            if n.op == "input":
                continue
            q, se = float(per[n.name].mean()), float(per[n.name].std() / math.sqrt(AB))
            if not abs(pred[i][1] - q) <= 5 * se + q / math.sqrt(AN):
                bad.append(
                    f"{n.name}: predicted {pred[i][1]:.4g}, measured {q:.4g} +- {5 * se + q / math.sqrt(AN):.2g}"
                )
        return bad

    # (the adds with the independence rule, right in expectation over zero-mean weights: the Jacobian term of
    # x + attn(ln(x)) is of order 1/AN here; test_the_measured_cross_moment_is_what_makes_them_agree measures it)
    assert not failures(propagate(g, _x_moments(x, x)))
    for n in g.nodes:  # the old rule: every key, no score spread, independent tokens
        if n.op == "mix":
            n.attn = (0.0, np.full(AT, AT), 0.0)
    bad = failures(propagate(g, _x_moments(x, x)))
    assert {b.split(":")[0] for b in bad} >= {"attn1.attention", "attn1", "attn2.attention", "attn2"}, bad
