"""ConsensusClustering: alignment, majority vote, evidence accumulation, confidence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from gpuseg.backend import to_host
from gpuseg.cluster import ConsensusClustering
from gpuseg.cluster.consensus import align_labels, evidence_accumulation, majority_vote


def _h(a):
    return np.asarray(to_host(a))


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=1500, centers=4, n_features=5, cluster_std=0.6, random_state=3)
    return X.astype(np.float32), y


@given(
    labels=st.lists(st.integers(0, 5), min_size=6, max_size=200),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_alignment_recovers_a_permuted_labelling_exactly(labels, seed):
    ref = np.asarray(labels)
    values = np.unique(ref)
    perm = np.random.default_rng(seed).permutation(values.size)
    permuted = perm[np.searchsorted(values, ref)] + 10  # other label values as well
    assert (_h(align_labels(permuted, ref)) == ref).all()


def test_alignment_runs_on_the_array_type_given(xp):
    ref = xp.asarray([0, 0, 1, 1, 2, 2])
    out = align_labels(xp.asarray([5, 5, 3, 3, 4, 4]), ref)
    assert type(out) is type(ref)
    assert (_h(out) == [0, 0, 1, 1, 2, 2]).all()


def test_alignment_with_more_clusters_is_many_to_one():
    ref = np.array([0] * 6 + [1] * 6)
    split = np.array([7, 7, 7, 8, 8, 8, 9, 9, 9, 9, 9, 9])  # the first reference cluster split in two
    assert (align_labels(split, ref) == ref).all()
    fewer = np.array([4] * 12)  # one cluster: it maps to the reference cluster it overlaps most
    out = align_labels(fewer, np.array([0] * 5 + [1] * 7))
    assert (out == 1).all()


def test_alignment_keeps_noise():
    ref = np.array([0, 0, 1, 1, 1])
    out = align_labels(np.array([-1, 3, 2, 2, -1]), ref)
    assert out.tolist() == [-1, 0, 1, 1, -1]


@given(labels=st.lists(st.integers(0, 4), min_size=3, max_size=150), members=st.integers(1, 5))
@settings(max_examples=50, deadline=None)
def test_vote_of_identical_members_is_the_member(labels, members):
    lab = np.asarray(labels)
    out, conf = majority_vote([lab] * members)
    assert (out == lab).all()
    assert (conf == 1.0).all()


@given(
    sets=st.integers(2, 6).flatmap(
        lambda n: st.lists(st.lists(st.integers(-1, 3), min_size=n, max_size=n), min_size=2, max_size=5)
    ),
)
@settings(max_examples=80, deadline=None)
def test_vote_confidence_is_the_agreeing_share(sets):
    label_sets = [np.asarray(s) for s in sets]
    out, conf = majority_vote(label_sets)
    conf = _h(conf)
    assert conf.dtype == np.float32
    assert ((conf >= 0) & (conf <= 1)).all()
    # the reference partition: the first (best) member among those with the most segments
    most = max(len(np.unique(s[s >= 0])) for s in label_sets)
    ref = next(s for s in label_sets if len(np.unique(s[s >= 0])) == most)
    aligned = np.stack([align_labels(s, ref) for s in label_sets])
    for i in range(len(out)):
        if out[i] == -1:
            assert conf[i] == 0.0 and (aligned[:, i] == -1).all()
            continue
        agree = (aligned[:, i] == out[i]).mean()
        assert conf[i] == pytest.approx(agree, abs=1e-6)
        # the winner has the most votes
        counts = {v: (aligned[:, i] == v).sum() for v in set(aligned[:, i].tolist()) if v >= 0}
        assert counts[int(out[i])] == max(counts.values())
        if (aligned[:, i] == aligned[0, i]).all():
            assert conf[i] == 1.0


def test_vote_tie_goes_to_the_best_member():
    a = np.array([0, 0, 0, 1, 1, 1])
    b = np.array([0, 0, 1, 1, 1, 1])  # disagrees with a on customer 2
    out_a, conf = majority_vote([a, b], scores=[0.9, 0.1])
    out_b, _ = majority_vote([a, b], scores=[0.1, 0.9])
    assert out_a[2] == 0 and out_b[2] == 1
    assert conf[2] == 0.5 and (np.delete(conf, 2) == 1.0).all()


def test_vote_majority_wins_over_the_reference():
    ref = np.array([0, 0, 0, 1, 1, 1])
    other = np.array([0, 0, 1, 1, 1, 1])
    out, conf = majority_vote([ref, other, other], scores=[0.9, 0.1, 0.1])
    assert out[2] == 1 and conf[2] == pytest.approx(2 / 3)


def test_evidence_accumulation_recovers_well_separated_blobs(blobs):
    X, y = blobs
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    members = []
    for seed in range(5):  # k-means at several k, with a little label noise each
        lab = KMeans(4 + seed % 3, n_init=1, random_state=seed).fit_predict(X)
        flip = rng.random(len(lab)) < 0.03
        lab[flip] = rng.integers(0, 4, flip.sum())
        members.append(lab)
    labels, conf = evidence_accumulation(members, 4, sample_size=400, random_state=0)
    assert adjusted_rand_score(y, labels) > 0.97
    assert ((conf >= 0) & (conf <= 1)).all() and np.median(conf) > 0.7


def test_evidence_accumulation_never_builds_the_full_matrix():
    # 60,000 customers: an n x n float64 co-association would need 28 GiB
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 60_000)
    members = [truth.copy() for _ in range(3)]
    members[1][:100] = (members[1][:100] + 1) % 3
    labels, conf = evidence_accumulation(members, 3, sample_size=300, random_state=0)
    assert adjusted_rand_score(truth, labels) > 0.99
    assert labels.shape == (60_000,)


def test_evidence_accumulation_is_seeded():
    rng = np.random.default_rng(2)
    members = [rng.integers(0, 4, 3000) for _ in range(4)]
    a, _ = evidence_accumulation(members, 4, sample_size=200, random_state=5)
    b, _ = evidence_accumulation(members, 4, sample_size=200, random_state=5)
    assert (a == b).all()


@pytest.mark.parametrize("strategy", ["vote", "evidence"])
def test_consensus_of_members_finds_the_blobs(blobs, strategy, xp, rapids_if_cupy):
    X, y = blobs
    est = ConsensusClustering(4, members=("kmeans", "minibatch_kmeans", "pso_kmeans"), strategy=strategy,
                              sample_size=300, random_state=0)
    est.fit(xp.asarray(X))
    assert adjusted_rand_score(y, _h(est.labels_)) > 0.99
    assert set(est.member_labels_) == {"kmeans", "minibatch_kmeans", "pso_kmeans"}
    assert type(est.labels_) is type(xp.asarray(X))
    conf = _h(est.confidence_)
    assert ((conf >= 0) & (conf <= 1)).all() and conf.mean() > 0.95


def test_consensus_uses_given_member_labels_without_fitting(blobs, monkeypatch):
    X, y = blobs
    import gpuseg.cluster as reg

    monkeypatch.setattr(reg, "make_estimator", lambda *a, **k: pytest.fail("a member was fitted again"))
    given = {"kmeans": y, "som": (y + 1) % 4}
    est = ConsensusClustering(4, members=("kmeans", "som"), random_state=0).fit(X, member_labels=given)
    assert adjusted_rand_score(y, est.labels_) == 1.0
    assert (est.confidence_ == 1.0).all()
    assert set(est.member_scores_) == {"kmeans", "som"}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"strategy": "median"}, "strategy"),
        ({"members": ("kmeans",)}, "at least 2"),
        ({"members": ("kmeans", "consensus")}, "not an available method"),
        ({"sample_size": 3}, "sample_size"),
    ],
)
def test_consensus_parameters_are_checked(blobs, params, match):
    with pytest.raises(ValueError, match=match):
        ConsensusClustering(3, **params).fit(blobs[0])


@pytest.mark.parametrize("best_first", [True, False])
def test_vote_tie_goes_to_the_best_member_with_four_members(best_first):
    # best and worst say 1, the middle two say 0: a 2-2 tie that the best member decides
    a = np.array([0, 0, 1, 1, 1])
    b = np.array([0, 0, 1, 1, 0])
    sets = [a, b, b, a]
    scores = [4.0, 3.0, 2.0, 1.0] if best_first else [1.0, 3.0, 2.0, 4.0]
    out, conf = majority_vote(sets, scores)
    assert out[4] == 1 and conf[4] == 0.5
    # five members over three segments, split 2-2-1 on customer 6: the pair holding the
    # best member wins although the other pair holds the second and third best
    x = np.array([0, 0, 1, 1, 2, 2, 0])
    y = np.array([0, 0, 1, 1, 2, 2, 1])
    z = np.array([0, 0, 1, 1, 2, 2, 2])
    out5, conf5 = majority_vote([x, y, y, x, z], [5.0, 4.0, 3.0, 1.0, 2.0])
    assert out5[6] == 0 and conf5[6] == pytest.approx(0.4)


def test_large_and_sparse_label_values():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, 500)
    big = (ref.astype(np.int64) + 3) * 2**40  # far beyond int32, far too sparse to count
    assert (align_labels(ref, big) == (ref + 3) * 2**40).all()
    assert (align_labels(big, ref) == ref).all()
    out, conf = majority_vote([big, big, ref])
    assert out.dtype == np.int64 and adjusted_rand_score(ref, out) == 1.0 and (conf == 1).all()


def test_vote_reference_is_a_member_with_every_segment():
    full = np.array([0, 0, 1, 1, 2, 2])
    short = np.array([0, 0, 1, 1, 1, 1])  # best-scoring, but one segment short
    out, _ = majority_vote([short, full, full], [0.9, 0.1, 0.1])
    assert len(np.unique(out)) == 3


def test_evidence_keeps_sample_groups_and_leaves_all_noise_unassigned():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 400)
    members = [truth.copy(), truth.copy(), np.where(rng.random(400) < 0.2, rng.integers(0, 3, 400), truth)]
    for m in members:
        m[:5] = -1
    labels, conf = evidence_accumulation(members, 3, sample_size=400, random_state=0)
    assert (labels[:5] == -1).all() and (conf[:5] == 0).all()
    assert adjusted_rand_score(truth[5:], labels[5:]) > 0.95


def test_member_labels_must_match_the_data(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="labels for"):
        ConsensusClustering(4, members=("a", "b")).fit(X, member_labels={"a": y, "b": y[:-1]})
    with pytest.raises(ValueError, match="same length"):
        majority_vote([y, y[:-1]])


def test_given_labels_are_the_members_when_members_is_left_at_its_default(blobs, monkeypatch):
    """docs/api.md's call: the given labels are combined, nothing is fitted (the default
    members used to be fitted and the given labels silently left out)."""
    X, y = blobs
    import gpuseg.cluster as reg

    monkeypatch.setattr(reg, "make_estimator", lambda *a, **k: pytest.fail("a default member was fitted"))
    noisy = np.where(np.arange(len(y)) % 7 == 0, (y + 1) % 4, y)
    est = ConsensusClustering(4, random_state=0).fit(X, member_labels={"a": y, "b": noisy, "c": (y + 2) % 4})
    assert list(est.member_labels_) == ["a", "b", "c"] and set(est.member_scores_) == {"a", "b", "c"}
    assert adjusted_rand_score(y, est.labels_) == 1.0
    # fit_predict forwards member_labels to fit
    out = ConsensusClustering(4, random_state=0).fit_predict(X, member_labels={"a": y, "b": noisy})
    assert adjusted_rand_score(y, out) > 0.9


def test_given_labels_outside_explicit_members_are_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"member_labels: 'a' is not one of members \['kmeans', 'som'\]"):
        ConsensusClustering(4, members=("kmeans", "som")).fit(X, member_labels={"a": y, "kmeans": y})


@pytest.mark.parametrize("labels, error, match", [
    ({"a": "y"}, ValueError, "member_labels needs at least 2 methods"),
    ({"a": "y", "b": "short"}, ValueError, r"member_labels\['b'\] has 1499 labels for 1500 rows of X"),
    ({"a": "y", "b": "2d"}, ValueError, r"member_labels\['b'\] has labels of shape \(1500, 1\)"),
    ({"a": "y", "b": "noise"}, ValueError, r"member_labels\['b'\] has no segment: every label is -1"),
    ({"a": "y", "b": "text"}, TypeError, r"member_labels\['b'\] must hold integer labels"),
    ({"a": "y", "b": "half"}, TypeError, r"member_labels\['b'\] must hold integer labels"),
])
@pytest.mark.parametrize("strategy", ["vote", "evidence"])
def test_given_labels_are_checked(blobs, labels, error, match, strategy):
    X, y = blobs
    make = {"y": y, "short": y[:-1], "2d": y[:, None], "noise": np.full(len(y), -1), "text": np.array(list("wxyz"))[y],
            "half": y + 0.5}
    with pytest.raises(error, match=match):
        ConsensusClustering(4, strategy=strategy).fit(X, member_labels={m: make[v] for m, v in labels.items()})


def test_given_labels_may_be_lists_series_or_integral_floats(blobs):
    import pandas as pd

    X, y = blobs
    ref = ConsensusClustering(4, random_state=0).fit(X, member_labels={"a": y, "b": (y + 1) % 4})
    for b in ([int(v) for v in (y + 1) % 4], pd.Series((y + 1) % 4), ((y + 1) % 4).astype(np.float64)):
        est = ConsensusClustering(4, random_state=0).fit(X, member_labels={"a": y, "b": b})
        np.testing.assert_array_equal(est.labels_, ref.labels_)


def test_config_check_validates_consensus_settings_without_data():
    """check_method_params validates the consensus' own settings (no fit): _validate() with no arguments."""
    from gpuseg.cluster import check_method_params
    from gpuseg.errors import ConfigError

    check_method_params("consensus", {"members": ["kmeans", "gmm"]}, 8)
    with pytest.raises(ConfigError, match="strategy"):
        check_method_params("consensus", {"members": ["kmeans", "gmm"], "strategy": "median"}, 8)
