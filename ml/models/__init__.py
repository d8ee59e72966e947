"""What predicts: the ClvModel interface every model has (interface), the preprocessing, the network and its ZILN
loss (preprocess, network, ziln), training, hyperparameter search and horizon calibration (training, search,
calibration), and the zoo of members (zoo/).

May import: ml.data, ml.settings. Nothing here scores a model against another: that is ml.evaluation."""
