package storetest

// engineTests run the refresh rules of session.Engine on the store.
var engineTests = []test{}
