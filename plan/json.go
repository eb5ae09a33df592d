package plan

import (
	"strconv"

	"github.com/pyramid-crm/pyramid/money"
)

// Amount marshals money as a JSON number with two decimals, as snapshots
// do.
type Amount money.Cents

// MarshalJSON writes the plain two-decimal form.
func (a Amount) MarshalJSON() ([]byte, error) { return money.Cents(a).Append(nil), nil }

// Ratio marshals a fraction with four decimals, as snapshots do.
type Ratio float64

// MarshalJSON writes four decimals.
func (r Ratio) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(r), 'f', 4, 64), nil
}

// GoalValue is a goal's target or actual: an amount for absolute_sales, a
// ratio for share_of_wallet, as in the snapshot's goal_target.
type GoalValue struct {
	Share bool
	Value float64 // the ratio, or the amount in major units
}

// MarshalJSON writes an amount with two decimals or a ratio with four.
func (g GoalValue) MarshalJSON() ([]byte, error) {
	if g.Share {
		return Ratio(g.Value).MarshalJSON()
	}
	return Amount(units(g.Value)).MarshalJSON()
}
