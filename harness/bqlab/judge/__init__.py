"""Evidence and verdicts: the watchdog's samples (guest, device, page_pool ledger) and the
rules that turn them into PASS, STALL, LEAK or FAIL."""
