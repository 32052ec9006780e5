// The fixture's own instrument (not a k3s component): the trace clock and the truth log.
module k3sprof.invalid/truth

go 1.19
