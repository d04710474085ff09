"""batonctl and the control socket: real batonctl against a real batond."""
