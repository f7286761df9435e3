"""The leave fit's reference recommender serves only the users a run still reads, and those
users live exactly as they would among all (so the fitted world does not change); the
utility of some users is their rows of everyone's."""

from __future__ import annotations

import torch

from recoworld.apps.calibrate.dynamics import serve_reference
from recoworld.catalog import Catalog
from recoworld.simulators.population import SyntheticPopulation
from recoworld.simulators.social import SocialInfluence, SocialStatisticalUsers
from recoworld.simulators.statistical import StatisticalUserConfig, StatisticalUsers

N_USERS, STEPS = 24, 25
# One film rated once (the calibrated world's rule) and a session theme: every utility term.
CONFIG = StatisticalUserConfig(rewatch=False, theme_weight=2.0, leave_base=-1.0)


def steps(catalog: Catalog, serving: torch.Tensor | None = None):
    """Per step: who was served, the slates, and what the users did with them."""
    seeds = torch.arange(100, 100 + N_USERS)
    out = []
    for t, (_, slates, r) in enumerate(serve_reference(catalog, CONFIG, SyntheticPopulation(), seeds, STEPS,
                                                       serving=serving)):
        served = torch.ones(N_USERS, dtype=torch.bool) if serving is None else serving.clone()
        out.append((served, slates.clone(), r.clicked.clone(), r.rating.clone(), r.left_session.clone()))
        if serving is not None:
            serving &= torch.arange(N_USERS) > t  # one user fewer each step, down to a single one
    return out


def test_users_served_live_as_among_all_and_the_others_are_left_idle():
    catalog = Catalog.synthetic(n_items=300, n_genres=6, feature_dim=8, seed=3)
    everyone = steps(catalog)
    some = steps(catalog, torch.ones(N_USERS, dtype=torch.bool))
    assert [int(served.sum()) for served, *_ in some[-4:]] == [3, 2, 1, 0]  # down to a lone user, then none
    for (_, *all_of_them), (served, *theirs) in zip(everyone, some):
        for a, b in zip(all_of_them, theirs):
            assert torch.equal(a[served], b[served])
        assert not theirs[1][~served].any()  # the users no longer served did not step: no click


def test_utility_of_some_users_is_their_rows_of_everyones():
    catalog = Catalog.synthetic(n_items=300, n_genres=6, feature_dim=8, seed=3)
    for sim in (StatisticalUsers(catalog, CONFIG),
                SocialStatisticalUsers(catalog, CONFIG, social=SocialInfluence(weight=0.5))):
        sim.reset(N_USERS, seed=7)
        gen = torch.Generator().manual_seed(0)
        for _ in range(5):  # satiation, history, theme and watched films to read
            sim.respond(torch.stack([torch.randperm(300, generator=gen)[:10] for _ in range(N_USERS)]))
            gone = sim.churned.nonzero().flatten()
            sim.reset(N_USERS, seed=gone + 1000, users=gone)
        items = torch.stack([torch.randperm(300, generator=gen)[:40] for _ in range(N_USERS)])
        every = sim.utility(items)
        assert torch.equal(torch.sigmoid(every), sim.click_probabilities(items))
        users = torch.tensor([2, 5, 6, 19])
        torch.testing.assert_close(sim.utility(items[users], users), every[users], rtol=0, atol=1e-6)
