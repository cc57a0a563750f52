#!/usr/bin/env bash
echo "make demo: not built yet. It will install deps, build, make certificates,"
echo "start a coordinator, run 20 simulated clients on pat:2 Fashion-MNIST with"
echo "private SE and with --private none, and print the per-client comparison."
