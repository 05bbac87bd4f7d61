"""Everything assignment.ipynb imports, in the notebook's order.

The code lives in the `reid` package, one module per part of the handout; this file is
the single import surface (`from helpers import *`).

| handout                         | names                                                        | module           |
| ------------------------------- | ------------------------------------------------------------ | ---------------- |
| C1 retrieval datasets           | RetrievalDataset, UNKNOWN_GT                                 | reid/data.py     |
| C2 transform                    | reid_transform, load_image                                   | reid/data.py     |
| C3 loaders (shuffle=False)      | retrieval_loader                                             | reid/data.py     |
| C8 ID-loss dataset, triplets    | IDLossDataset, TripletDataset                                | reid/data.py     |
| finding / building the data     | prepare_data, find_data_root, check_layout, DataInfo         | reid/layout.py   |
| C4–C5 modified ResNet-18 (Q1–Q4)| ResBlock, ModifiedResNet18, table1_shapes, pooling_kernel,   | reid/model.py    |
|                                 | count_parameters, summary_table (ModifiedResNet50 optional)  |                  |
| C6 ImageNet weights (Q5)        | load_imagenet_weights, weight_mapping_report                 | reid/model.py    |
| C7 ReID head (Q6, Q7)           | ReIDNet (BNNeckNet for the stronger recipe), build_model     | reid/model.py    |
| training (Q8, Q11)              | TrainConfig, train_model, History                            | reid/train.py    |
| device, AMP, seeds              | pick_device, seed_everything                                 | reid/device.py   |
| losses (C7 ID loss, C8 triplet) | id_loss, handout_triplet_loss, HANDOUT_MARGIN                | reid/losses.py   |
| evaluation: features once,      | retrieve -> Retrieval (.metrics(), .ranked(k), .dist),        | reid/evaluate.py |
| distances once, every metric    | extract_features, pairwise_distance, rank_k_accuracy, cmc_map |                  |
| Q10 number of triplets          | count_possible_triplets                                      | reid/data.py     |
| test predictions                | write_predictions, score_predictions, rank_gallery           | reid/predict.py  |
| comparing models, examples      | compare_models, describe_history, pick_examples,             | reid/report.py   |
|                                 | evaluate_retrieval (older name: retrieve(...).metrics())     |                  |
| figures                         | plot_history, plot_ranked_results, show_gallery_grid, ...    | reid/plots.py    |
"""
from reid.data import (IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, UNKNOWN_GT, DataError,  # noqa: F401
                       IDLossDataset, ImageCache, ImageDecodeError, RetrievalDataset, TripletDataset,
                       count_possible_triplets, load_image, read_csv, reid_transform, retrieval_loader)
from reid.layout import DataInfo, DataLayoutError, check_layout, find_data_root, prepare_data  # noqa: F401
from reid.device import pick_device, seed_everything  # noqa: F401
from reid.evaluate import Retrieval, cmc_map, extract_features, pairwise_distance, rank_k_accuracy, retrieve  # noqa: F401
from reid.losses import HANDOUT_MARGIN, handout_triplet_loss, id_loss  # noqa: F401
from reid.model import (BNNeckNet, Bottleneck, ModifiedResNet18, ModifiedResNet50, ReIDNet,  # noqa: F401
                        ResBlock, WeightReport, build_model, count_parameters, load_imagenet_weights,
                        pooling_kernel, summary_table, table1_shapes, weight_mapping_report)
from reid.plots import (denormalize, plot_history, plot_ranked_results, show_before_after,  # noqa: F401
                        show_gallery_grid)
from reid.report import (compare_models, describe_history, evaluate_retrieval, pick_examples,  # noqa: F401
                         save_results)
from reid.predict import rank_gallery, score_predictions, write_predictions  # noqa: F401
from reid.train import History, TrainConfig, train_model  # noqa: F401
