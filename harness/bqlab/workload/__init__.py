"""What a scenario does to the DUT: traffic, memory pressure and fault injection,
reconfiguration (churn), the kernel's own selftests."""
