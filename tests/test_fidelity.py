"""Precision, recall and KID against closed forms, an independent implementation, and the
feature classifier on digits."""

import numpy as np
import pytest
from sklearn.metrics.pairwise import polynomial_kernel as sk_polynomial_kernel

from benchmark.data.datasets import load_digits
from benchmark.scoring import fidelity

# --- precision and recall ----------------------------------------------------------------------


def _two_clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(2n, 5) points in two far-apart unit Gaussian blobs, and their cluster labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    return rng.normal(size=(2 * n, 5)) + 50.0 * labels[:, None], labels


def test_identical_sets_have_precision_and_recall_one():
    features = np.random.default_rng(0).normal(size=(300, 8))
    assert fidelity.precision_recall(features, features) == (1.0, 1.0)


def test_duplicated_points_are_inside_their_zero_radius_balls():
    features = np.repeat(np.random.default_rng(1).normal(size=(10, 4)), 4, axis=0)
    assert np.all(fidelity.knn_radii(features) == 0.0)
    assert fidelity.precision_recall(features, features) == (1.0, 1.0)


def test_a_sample_of_one_of_two_clusters_has_half_the_recall():
    real, _ = _two_clusters(400, 0)
    fake, labels = _two_clusters(400, 1)
    precision, recall = fidelity.precision_recall(real, fake[labels == 0])
    # Precision: as high as that of a sample of both clusters (k = 3 balls leave some of a
    # Gaussian's tail outside: measured 0.93 for both).
    assert precision == pytest.approx(fidelity.precision_recall(real, fake)[0], abs=0.03)
    assert precision > 0.85
    assert recall == pytest.approx(0.5, abs=0.05)


def test_disjoint_sets_have_precision_and_recall_zero():
    real, labels = _two_clusters(200, 2)
    assert fidelity.precision_recall(real[labels == 0], real[labels == 1]) == (0.0, 0.0)


def test_knn_radius_is_the_kth_neighbour_distance():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # Point 0's neighbours are at 1, 3, 6: the third is 6 away.
    np.testing.assert_allclose(fidelity.knn_radii(points, k=3), [6.0, 5.0, 3.0, 5.0, 9.0])
    with pytest.raises(ValueError, match="too few for k = 3"):
        fidelity.knn_radii(points[:3])


@pytest.mark.parametrize("seed", [0, 1])
def test_precision_recall_agree_with_prdc(seed):
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(800, 16))
    fake = 1.2 * rng.normal(size=(600, 16)) + 0.3
    expected = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
    precision, recall = fidelity.precision_recall(real, fake)
    assert precision == pytest.approx(expected["precision"], abs=1e-12)
    assert recall == pytest.approx(expected["recall"], abs=1e-12)


# --- KID ---------------------------------------------------------------------------------------


def expected_cubic_kernel(a: np.ndarray, b: np.ndarray, var: float) -> float:
    """E k(x, y) for independent x ~ N(a, var I), y ~ N(b, var I), k = (x.y / d + 1)^3.

    With T = x.y: given y, T ~ N(a.y, var |y|^2), so E[T^3 | y] = m^3 + 3 m var v with m = a.y,
    v = |y|^2; over y = b + sqrt(var) e: E m = c, E m^2 = c^2 + var |a|^2, E m^3 = c^3 +
    3 c var |a|^2 and E[m v] = c (|b|^2 + var d + 2 var), where c = a.b.
    """
    d, c = len(a), a @ b
    t1 = c
    t2 = c**2 + var * (a @ a) + var * (b @ b + var * d)
    t3 = c**3 + 3 * c * var * (a @ a) + 3 * var * c * (b @ b + var * d + 2 * var)
    return t3 / d**3 + 3 * t2 / d**2 + 3 * t1 / d + 1


def population_mmd2(a: np.ndarray, b: np.ndarray, var: float) -> float:
    return expected_cubic_kernel(a, a, var) + expected_cubic_kernel(b, b, var) - 2 * expected_cubic_kernel(a, b, var)


def test_kid_of_shifted_gaussians_matches_the_closed_form_within_its_standard_error():
    rng = np.random.default_rng(0)
    d, var = 4, 1.0
    a, b = np.zeros(d), np.array([1.0, -0.5, 0.0, 0.5])
    x = a + np.sqrt(var) * rng.normal(size=(40_000, d))
    y = b + np.sqrt(var) * rng.normal(size=(40_000, d))
    expected = population_mmd2(a, b, var)  # 2.2324 (a Monte Carlo check over 4e6 pairs: 2.2367)
    value, se = fidelity.kid(x, y, n_subsets=40, subset_size=1000)
    assert 0 < se < 0.1 * expected
    assert abs(value - expected) < 3 * se


def test_kid_of_identical_sets_is_zero_within_its_standard_error():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(20_000, 16))
    value, se = fidelity.kid(features, features, n_subsets=30, subset_size=500)
    assert abs(value) < 3 * se
    # Two draws of one distribution, no vector shared.
    value, se = fidelity.kid(features, rng.normal(size=(20_000, 16)), n_subsets=30, subset_size=500)
    assert abs(value) < 3 * se


def test_kid_of_a_small_set_with_itself_has_the_overlap_bias():
    # Subsets of one set share about m^2 / n vectors, whose self-pairs enter the cross term:
    # E KID = -2 (mean k(x, x) - mean k(x, x')) / n, a known (tiny at n = 10,000) artefact.
    features = np.random.default_rng(2).normal(size=(1000, 16))
    kernel = fidelity.polynomial_kernel(features, features)
    off_diagonal = (kernel.sum() - np.trace(kernel)) / (1000 * 999)
    expected = -2 * (np.mean(np.diag(kernel)) - off_diagonal) / 1000
    value, se = fidelity.kid(features, features, n_subsets=200, subset_size=300)
    assert abs(value - expected) < 3 * se


def test_kid_grows_with_the_shift():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(2000, 8))
    values = [fidelity.kid(real, rng.normal(size=(2000, 8)) + shift, n_subsets=10, subset_size=500)[0]
              for shift in (0.0, 0.25, 1.0)]  # fmt: skip
    assert values[0] < values[1] < values[2]


def test_one_full_subset_is_the_direct_unbiased_estimate():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 0.3
    # Independent: scikit-learn's kernel and sums over i != j written as loops.
    kxx, kyy = (sk_polynomial_kernel(s, s, degree=3, gamma=1 / 5, coef0=1) for s in (x, y))
    kxy = sk_polynomial_kernel(x, y, degree=3, gamma=1 / 5, coef0=1)
    within_x = sum(kxx[i, j] for i in range(60) for j in range(60) if i != j) / (60 * 59)
    within_y = sum(kyy[i, j] for i in range(50) for j in range(50) if i != j) / (50 * 49)
    expected = within_x + within_y - 2 * kxy.mean()
    assert fidelity.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)


def test_subsets_average_to_the_full_estimate_and_never_exceed_half_the_data():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(400, 5)), rng.normal(size=(300, 5)) + 0.5
    value, se = fidelity.kid(x, y, n_subsets=200, subset_size=1000)  # subsets of 150
    assert abs(value - fidelity.mmd2_unbiased(x, y)) < 3 * se
    # Two disjoint subsets of 150 fit in 300 vectors: the error counts 2, not 200, subsets.
    values = [fidelity.kid(x, y, n_subsets=200, seed=s)[0] for s in range(5)]
    assert se > 3 * np.std(values)
    assert np.isnan(fidelity.kid(x, y, n_subsets=1)[1])


def test_kid_needs_two_vectors():
    with pytest.raises(ValueError, match="at least 2"):
        fidelity.kid(np.ones((1, 3)), np.ones((5, 3)))


# --- in the feature space of the Fréchet-distance classifier, on digits --------------------------


@pytest.fixture(scope="module")
def digits_features(tmp_path_factory):
    from benchmark.scoring.frechet import load_or_train

    data = load_digits()
    classifier = load_or_train(data, tmp_path_factory.mktemp("fd_cache"))
    return data, classifier


def test_classifier_features_of_half_the_classes_have_half_the_recall(digits_features):
    data, classifier = digits_features
    real = classifier.features(data.x_test)  # 360 test images, all ten classes
    half = classifier.features(data.x_train[data.y_train < 5])  # other images, classes 0-4
    precision, recall = fidelity.precision_recall(real, half)
    assert precision > 0.85
    assert recall == pytest.approx(0.5, abs=0.1)
    every = classifier.features(data.x_train)
    assert fidelity.precision_recall(real, every)[1] > recall + 0.3
    assert fidelity.precision_recall(real, real) == (1.0, 1.0)


def test_classifier_features_score_noise_worse_than_real_images(digits_features):
    data, classifier = digits_features
    rng = np.random.default_rng(0)
    real = classifier.features(data.x_test)
    other = classifier.features(data.x_train)
    noise = classifier.features(rng.random(data.x_train.shape).astype(np.float32))
    kid_real, se_real = fidelity.kid(real, other, n_subsets=20, subset_size=300)
    kid_noise, _ = fidelity.kid(real, noise, n_subsets=20, subset_size=300)
    assert abs(kid_real) < max(3 * se_real, 0.05 * kid_noise)
    assert kid_noise > 10 * abs(kid_real)
    # Measured: noise 0.16 / 0.05, other real images 0.94 / 0.87.
    noise_precision, noise_recall = fidelity.precision_recall(real, noise)
    real_precision, real_recall = fidelity.precision_recall(real, other)
    assert noise_precision < 0.3 < 0.85 < real_precision
    assert noise_recall < 0.1 < 0.8 < real_recall


# --- coverage --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_coverage_agrees_with_prdc(seed):
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(700, 12))
    fake = 0.6 * rng.normal(size=(700, 12)) + 0.4
    expected = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)["coverage"]
    radii = fidelity.knn_radii(real, 5)
    assert fidelity.coverage(real, fake, radii) == pytest.approx(expected, abs=1e-12)


def test_coverage_by_hand_and_a_pile_of_samples_covers_little():
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    radii = np.array([0.5, 0.5, 0.5, 0.5])
    # Samples near 0 and 2 only: two of the four real balls hold one.
    assert fidelity.coverage(real, np.array([[0.1], [2.4], [5.0]]), radii) == 0.5
    rng = np.random.default_rng(3)
    spread = rng.normal(size=(1000, 8))
    pile = np.zeros((1000, 8)) + 0.01 * rng.normal(size=(1000, 8))  # every sample at the centre
    r = fidelity.knn_radii(spread, 5)
    same = fidelity.coverage(spread, rng.normal(size=(1000, 8)), r)
    assert same > 0.9 and fidelity.coverage(spread, pile, r) < 0.1


def test_radii_for_several_k_come_from_one_search():
    x = np.random.default_rng(4).normal(size=(50, 3))
    both = fidelity.knn_radii_for(x, (3, 5))
    np.testing.assert_allclose(both[3], fidelity.knn_radii(x, 3))
    np.testing.assert_allclose(both[5], fidelity.knn_radii(x, 5))
    with pytest.raises(ValueError, match="too few for k = 5"):
        fidelity.knn_radii_for(x[:5], (3, 5))
