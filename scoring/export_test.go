package scoring

// MonthOf exposes monthOf to the external tests.
var MonthOf = monthOf
