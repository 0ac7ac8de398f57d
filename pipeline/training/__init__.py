"""Training: the ANN (`ann`: ESCAPE-NET variants, cached by data and settings) and STDB fine-tuning of the converted SNN (`stdb`)."""
