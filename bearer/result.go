package bearer

// The results Require reports to the observer of WithObserver, one per
// request. They are the label values of a metric such as
// silentrefresh_bearer_total{result=...}.
const (
	// ResultValid: the token verified (and its session is live, when
	// checked); the request was passed on.
	ResultValid = "valid"
	// ResultInvalid: no token, a malformed header, or a token that does
	// not verify for a reason other than its expiry.
	ResultInvalid = "invalid"
	// ResultExpired: a token valid but for its expiry, the one case where
	// refreshing helps.
	ResultExpired = "expired"
	// ResultSessionEnded: a valid token whose session the SessionChecker
	// refused (revoked, expired, or not reachable).
	ResultSessionEnded = "session_ended"
)

// Results lists every result Require reports, for registering a metric's
// label values up front.
var Results = []string{ResultValid, ResultInvalid, ResultExpired, ResultSessionEnded, ResultInvalidProof, ResultBoundAsBearer}
