cd /work/wt-seeds
s=$(date +%s)
make -o .venv/.installed -o .venv/.installed-sims -o .venv-interop/.installed frontier OUT=/work/wt-seeds/out RUN=seedsfr WIDTH=16 EPOCHS=4 TS="4 8" N=300 CODINGS="analog rate" GAINS="4 16" SPARSITIES=4 SEEDS="0 1 2"
echo "frontier rerun rc=$? wall $(( $(date +%s) - s )) s"
