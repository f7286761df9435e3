"""A fitted users' table whose traits the users' equations cannot take (NaN, infinite, out of
range or huge) is refused where a population is built from it, by row, user, column and value;
an ordinary table, and traits at the ends of their ranges, are taken as they are."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recoworld import Catalog
from recoworld.simulators import StatisticalUserConfig, StatisticalUsers
from recoworld.simulators.calibrated import CalibratedPopulation
from recoworld.simulators.population import check_fitted_traits

CATALOG = Catalog.synthetic(40, n_genres=4, seed=3)
FIX = ". Correct the row, or drop it, before building a population from the table"
ACTIVITY = "activity is how often the user comes back (the return probability takes its log, the mean return gap " \
           "divides by it)"


def _table(n: int = 6) -> pd.DataFrame:
    """Fitted users of ordinary traits, user ids 10, 11, ..."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "user_id": np.arange(10, 10 + n), "gender": ["F", "M"] * (n // 2),
        "patience": rng.uniform(0.4, 0.95, n), "activity": rng.lognormal(0.0, 0.5, n),
        "novelty": rng.normal(0.0, 2.0, n), "conformity": rng.uniform(0.0, 1.0, n),
        "popularity_bias": rng.normal(1.0, 0.3, n), "rating_bias": rng.normal(0.0, 0.5, n),
        "mean_rating": [math.nan] + [3.5] * (n - 1),  # not a trait the equations read: NaN is fine
    })


def _interest(n: int = 6) -> torch.Tensor:
    draws = torch.randn(n, CATALOG.feature_dim, generator=torch.Generator().manual_seed(1))
    return torch.nn.functional.normalize(draws, dim=1)


BAD = {
    "patience_nan": ("patience", math.nan, "patience=nan: must be a finite number in [0, 1]; patience is the "
                                           "probability of examining the next position"),
    "patience_above_one": ("patience", 1.5, "patience=1.5: must be in [0, 1]; patience is the probability of "
                                            "examining the next position"),
    "conformity_negative": ("conformity", -0.25, "conformity=-0.25: must be in [0, 1]; conformity is how closely "
                                                 "the user follows the crowd, a share"),
    "activity_zero": ("activity", 0.0, f"activity=0.0: must be > 0; {ACTIVITY}"),
    "activity_negative": ("activity", -1.0, f"activity=-1.0: must be > 0; {ACTIVITY}"),
    "activity_zero_in_float32": ("activity", 1e-50, "activity=1e-50: must be > 0 as a float32 too (it is computed "
                                                    f"in float32, where it is 0); {ACTIVITY}"),
    "activity_infinite_in_float32": ("activity", 1e39, "activity=1e+39: must be within ±3.4028235e+38, the float32 "
                                                       "range (it is computed in float32, where it is inf); "
                                                       f"{ACTIVITY}"),
    "novelty_huge": ("novelty", 1e30, "novelty=1e+30: must be <= 1e+17 (a larger magnitude overflows float32 in "
                                      "the click utility, where the user's novelty seeking weighs an item's "
                                      "distance); novelty is the user's novelty seeking"),
    "popularity_bias_minus_infinity": ("popularity_bias", -math.inf, "popularity_bias=-inf: must be a finite "
                                                                     "number; popularity_bias is the user's "
                                                                     "popularity bias"),
    "rating_bias_huge": ("rating_bias", -3e38, "rating_bias=-3e+38: must be >= -1e+17 (a larger magnitude "
                                               "overflows float32 in the rating of a clicked item, which it "
                                               "shifts); rating_bias is the stars added to the user's rating "
                                               "level"),
}


@pytest.mark.parametrize("case", BAD, ids=BAD)
def test_a_population_built_from_a_table_with_a_bad_trait_names_row_user_column_and_value(case):
    column, value, message = BAD[case]
    users = _table()
    users.loc[3, column] = value
    expected = f"the fitted users' table, row 3 (user_id 13): {message}{FIX}"
    with pytest.raises(ValueError) as error:
        CalibratedPopulation(users, _interest(), spec={"gender": "F"})
    assert str(error.value) == expected


def test_a_trait_written_as_text_is_named_before_it_is_read_as_a_number():
    users = _table()
    users["activity"] = users["activity"].astype(object)
    users.loc[1, "activity"] = "often"
    with pytest.raises(ValueError, match=r"^the fitted users' table, row 1 \(user_id 11\): activity='often': must be "
                                         r"a finite number"):
        CalibratedPopulation(users, _interest())


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_an_interest_vector_that_is_not_finite_is_named_by_its_row_and_user(value):
    interest = _interest()
    interest[2, 1] = value
    with pytest.raises(ValueError, match=r"^the fitted users' interest, row 2 \(user_id 12\): .* holds a NaN or an "
                                         r"infinite value, which makes every click utility of that user NaN; "
                                         r"correct the row, or drop the user from the table and the interest alike$"):
        CalibratedPopulation(_table(), interest)


def test_the_first_bad_row_is_named_by_its_position_and_a_table_without_user_ids_by_it_alone():
    users = _table().drop(columns="user_id").set_index(pd.Index([50, 40, 30, 20, 10, 0]))
    users.iloc[4, users.columns.get_loc("activity")] = math.inf
    users.iloc[5, users.columns.get_loc("patience")] = math.nan
    with pytest.raises(ValueError, match=r"^the fitted users' table, row 4: activity=inf: must be a finite number"):
        check_fitted_traits(users)


def test_a_trait_written_as_text_is_named():
    users = _table()
    users["novelty"] = users["novelty"].astype(object)
    users.loc[2, "novelty"] = "high"
    with pytest.raises(ValueError, match=r"^the fitted users' table, row 2 \(user_id 12\): novelty='high': must be a "
                                         r"finite number; novelty is the user's novelty seeking"):
        check_fitted_traits(users)


def test_traits_at_the_ends_of_their_ranges_and_an_ordinary_table_are_taken_as_they_are():
    users = _table()
    users.loc[0, ["patience", "conformity"]] = [0.0, 1.0]
    users.loc[1, ["patience", "conformity", "novelty", "rating_bias"]] = [1.0, 0.0, 1e17, -1e17]
    population = CalibratedPopulation(users, _interest())
    traits = population.traits(torch.arange(6))
    assert torch.equal(traits.patience, torch.tensor(users["patience"].to_numpy(), dtype=torch.float32))
    # the users step without NaN from such traits
    sim = StatisticalUsers(CATALOG, StatisticalUserConfig(), population, kernel="torch")
    sim.reset(6, seed=0)
    response = sim.respond(torch.arange(30).reshape(6, 5))
    assert not torch.isnan(response.satisfaction).any() and not torch.isnan(response.leave_hazard).any()


def _spy_on_the_rows_named_one_by_one(monkeypatch) -> list:
    """Every call of the per-row check, and whether it refused the row."""
    from recoworld.simulators import population

    calls, check = [], population._check_trait

    def counted(users, name, row):
        try:
            check(users, name, row)
        except ValueError:
            calls.append((name, row, "refused"))
            raise
        calls.append((name, row, "taken"))

    monkeypatch.setattr(population, "_check_trait", counted)
    return calls


@pytest.mark.parametrize("column, value", [("conformity", 0.0), ("patience", 1.0), ("conformity", 1.0),
                                           ("patience", 0.0)])
def test_a_large_table_of_traits_at_a_closed_end_is_checked_at_once_not_row_by_row(monkeypatch, column, value):
    # Before: every value at a range's end went through the per-row check (2.4 s per 100k users).
    users = _table(100_000).assign(**{column: value})
    calls = _spy_on_the_rows_named_one_by_one(monkeypatch)
    check_fitted_traits(users)
    assert calls == []


# Values at and around the ends of each range and of float32, as given and as float32 rounds them.
EDGES = [0.0, -0.0, 1.0, -1e-50, 1e-50, 1 - 1e-12, 1 + 1e-12, 1 + 1e-7, -1e-7, 0.5, 1e17, -1e17, 1.0000001e17,
         3.4e38, 3.5e38, 1e39, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("column", ["patience", "conformity", "activity", "novelty", "rating_bias"])
def test_only_the_rows_refused_are_checked_one_by_one(monkeypatch, column):
    """The pass over all rows flags exactly what the per-row check refuses: each row it hands
    on is refused, and each it takes the per-row check takes too."""
    from recoworld.simulators import population

    calls = _spy_on_the_rows_named_one_by_one(monkeypatch)
    for value in EDGES:
        users = _table(4)
        users.loc[1, column] = value
        calls.clear()
        try:
            check_fitted_traits(users)
        except ValueError:
            assert calls == [(column, 1, "refused")], value
        else:
            assert calls == [], value
            population._check_trait(users, column, 1)  # taken one by one too (would raise otherwise)


def test_the_first_refused_row_is_named_when_several_columns_refuse_rows():
    users = _table()
    users.loc[4, "patience"] = 2.0
    users.loc[2, "activity"] = 0.0
    with pytest.raises(ValueError, match=r"^the fitted users' table, row 2 \(user_id 12\): activity=0.0"):
        check_fitted_traits(users)


def test_a_column_of_python_numbers_is_checked_as_numbers(monkeypatch):
    users = _table(2000)
    users["patience"] = users["patience"].astype(object)  # Python floats in an object column, taken at once
    calls = _spy_on_the_rows_named_one_by_one(monkeypatch)
    CalibratedPopulation(users, _interest(2000))
    assert calls == []
    users.loc[1500, "patience"] = True  # a bool is not a number, though numpy would read it as 1
    with pytest.raises(ValueError, match=r"^the fitted users' table, row 1500 \(user_id 1510\): patience=True: must "
                                         r"be a finite number in \[0, 1\]"):
        CalibratedPopulation(users, _interest(2000))


def test_an_empty_table_is_named_not_a_tensor_reshape():
    users = _table(2).iloc[:0]
    with pytest.raises(ValueError) as error:  # was torch's "cannot reshape tensor of 0 elements"
        CalibratedPopulation(users, _interest(2)[:0])
    assert str(error.value) == ("the fitted users' table has no rows, and a population draws its users from them; "
                                "give a table of at least one fitted user")
