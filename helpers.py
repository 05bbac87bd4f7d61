"""Everything assignment.ipynb imports, in the notebook's order.

The code lives in the `reid` package, one module per concern; this file is the single import
surface (`from helpers import *`). From a notebook heading to its code in one jump:

| notebook section                   | names                                                          | module              |
| ---------------------------------- | -------------------------------------------------------------- | ------------------- |
| first cell: Colab, checklist       | Workspace, check_project, gpu_check, weights_check             | reid/colab.py       |
| finding / building the data        | prepare_data, find_data_root, check_layout, DataInfo           | reid/layout.py      |
| C1 retrieval datasets              | RetrievalDataset, UNKNOWN_GT                                   | reid/data.py        |
| C2 transform                       | reid_transform, load_image (person_transform: beyond)          | reid/data.py        |
| C3 loaders (shuffle=False)         | retrieval_loader                                               | reid/data.py        |
| C4–C5 modified ResNet-18 (Q1–Q4)   | ResBlock, ModifiedResNet18, table1_shapes, pooling_kernel,     | reid/model.py       |
|                                    | count_parameters, summary_table (ModifiedResNet50 optional)    |                     |
| C6 ImageNet weights (Q5)           | load_imagenet_weights, weight_mapping_report                   | reid/model.py       |
| C7 ReID head (Q6, Q7)              | ReIDNet (BNNeckNet for the stronger recipe), build_model       | reid/model.py       |
| C8 ID-loss dataset                 | IDLossDataset                                                  | reid/data.py        |
| training with ID loss (Q8)         | TrainConfig.handout_id, train_model, History                   | reid/train.py       |
| the losses                         | id_loss (CrossEntropyLoss), handout_triplet_loss, HANDOUT_MARGIN | reid/losses.py    |
| training budgets                   | choose_epochs, default_epochs, strong_input_size               | reid/budget.py      |
| device, AMP, seeds                 | pick_device, seed_everything                                   | reid/device.py      |
| evaluation: features once,         | retrieve -> Retrieval (.metrics(), .ranked(k), .rerank()),     | reid/evaluate.py    |
| distances once, every metric       | extract_features, pairwise_distance, rank_k_accuracy, cmc_map  |                     |
| Q9 ranked results                  | pick_examples, describe_ranks, plot_ranked_results             | reid/report.py,     |
|                                    |                                                                | reid/plots.py       |
| Q10 number of triplets             | count_possible_triplets                                        | reid/data.py        |
| training with triplet loss (Q11)   | TripletDataset, TrainConfig.handout_triplet                    | reid/data.py, train |
| comparing models                   | compare_models, describe_history, FLIP_LABEL, RERANK_LABEL     | reid/report.py      |
| beyond: stronger recipe            | TrainConfig.strong, BNNeckNet, ablation_table                  | reid/train.py, runs |
| beyond: re-ranking                 | rerank_distances, Retrieval.rerank                             | reid/rerank.py      |
| beyond: activation maps            | activation_maps, show_activation_maps, activation_stats, ...   | reid/actmap.py      |
| test predictions                   | write_predictions, score_predictions, rank_gallery             | reid/predict.py     |
| figures                            | plot_history, show_gallery_grid, show_images, ...              | reid/plots.py       |
"""
from reid.actmap import (activation_maps, activation_stats, describe_activation_maps, maps_in_frame,  # noqa: F401
                         show_activation_maps)
from reid.budget import choose_epochs, default_epochs, default_input_size, strong_input_size  # noqa: F401
from reid.colab import Workspace, check_project, gpu_check, weights_check  # noqa: F401
from reid.data import (IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, PERSON_SIZE, UNKNOWN_GT, DataError,  # noqa: F401
                       DataLayoutError, IDLossDataset, ImageCache, ImageDecodeError, RetrievalDataset,
                       TripletDataset, count_possible_triplets, load_image, person_transform, read_csv,
                       reid_transform, retrieval_loader)
from reid.device import pick_device, seed_everything  # noqa: F401
from reid.evaluate import Retrieval, cmc_map, extract_features, pairwise_distance, rank_k_accuracy, retrieve  # noqa: F401
from reid.layout import DataInfo, check_layout, find_data_root, prepare_data  # noqa: F401
from reid.losses import HANDOUT_MARGIN, handout_triplet_loss, id_loss  # noqa: F401
from reid.model import (BNNeckNet, Bottleneck, ModifiedResNet18, ModifiedResNet50, ReIDNet,  # noqa: F401
                        ResBlock, WeightReport, build_model, count_parameters, load_imagenet_weights,
                        pooling_kernel, summary_table, table1_shapes, weight_mapping_report)
from reid.plots import (denormalize, plot_history, plot_ranked_results, show_before_after,  # noqa: F401
                        show_gallery_grid, show_images)
from reid.predict import rank_gallery, score_predictions, write_predictions  # noqa: F401
from reid.report import (FLIP_LABEL, RERANK_LABEL, compare_models, describe_history, describe_ranks,  # noqa: F401
                         evaluate_retrieval, pick_examples, save_results)
from reid.rerank import rerank_distances  # noqa: F401
from reid.runs import ablation_table  # noqa: F401
from reid.train import History, TrainConfig, train_model  # noqa: F401
