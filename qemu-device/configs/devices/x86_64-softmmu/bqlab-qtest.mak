# The sanitizer build (bqlab build qemu --sanitize): bqnic on q35 under -accel qtest, for
# the sanitizer qtests and `make fuzz`. Nothing else: every other device (and TCG) would
# only make the ASan+UBSan build slower, for code bqnic's tests never run.
CONFIG_Q35=y
CONFIG_BQNIC=y
