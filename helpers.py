"""Everything assignment.ipynb imports, in the notebook's order.

The code lives in the `reid` package, one module per concern; this file is the single import
surface (`from helpers import *`). From a notebook heading to its code in one jump:

| notebook section                   | names                                                          | module              |
| ---------------------------------- | -------------------------------------------------------------- | ------------------- |
| first cell: Colab, checklist       | Workspace, check_project, gpu_check, weights_check,            | reid/colab.py       |
|                                    | find_weights_once; start_run (the run token)                   | reid/submission.py  |
| finding / building the data        | prepare_data, find_data_root, check_layout, DataInfo           | reid/layout.py      |
| C1 retrieval datasets              | RetrievalDataset, UNKNOWN_GT                                   | reid/data.py        |
| C2 transform                       | reid_transform, load_image (person_transform: beyond)          | reid/images.py      |
| C3 loaders (shuffle=False)         | retrieval_loader                                               | reid/data.py        |
| C4–C5 modified ResNet-18 (Q1–Q4)   | ResBlock, ModifiedResNet18, table1_shapes, pooling_kernel,     | reid/model.py       |
|                                    | count_parameters, summary_table (ModifiedResNet50 optional)    |                     |
| C6 ImageNet weights (Q5)           | load_imagenet_weights, weight_mapping_report                   | reid/model.py       |
| C7 ReID head (Q6, Q7)              | ReIDNet (BNNeckNet for the stronger recipe), build_model,      | reid/model.py       |
|                                    | weights_copy, holds_weights (the triplet model's start)        |                     |
| C8 ID-loss dataset                 | IDLossDataset                                                  | reid/data.py        |
| training with ID loss (Q8)         | TrainConfig.handout_id (settings per start), start_folder      | reid/config.py      |
|                                    | train_model, History (the kept epoch: best val mAP)            | reid/train.py       |
| the losses                         | id_loss (CrossEntropyLoss), handout_triplet_loss, HANDOUT_MARGIN | reid/losses.py    |
| how long a model trains            | plan_training, choose_epochs (the step ceiling),               | reid/budget.py,     |
|                                    | strong_input_size; the val curve's rule                        | reid/schedule.py    |
| device, precision, seeds           | pick_device, seed_everything, resolve_precision, machine_line  | reid/device.py      |
| device memory                      | GALLERY_FIGURE (the gallery figure's sample), planned_peak     | reid/memory.py      |
| evaluation: features once,         | retrieve -> Retrieval (.metrics(), .ranked(k), .rerank()),     | reid/evaluate.py    |
| distances once, every metric       | extract_features, pairwise_distance, rank_k_accuracy, cmc_map  |                     |
| Q9 ranked results                  | pick_examples, plot_ranked_results, ranked_rows,               | reid/report.py,     |
|                                    | describe_ranked_rows                                           | plots, findings     |
| Q10 number of triplets             | count_possible_triplets                                        | reid/data.py        |
| training with triplet loss (Q11)   | TripletDataset, TrainConfig.handout_triplet                    | reid/data.py, train |
| Q11, comparing models              | compare_handout_models, describe_comparison, epoch_by_epoch    | reid/findings.py    |
|                                    | compare_models, beyond_table, describe_history, verdict        | reid/report.py      |
| beyond: stronger recipe            | TrainConfig.strong, BNNeckNet, ablation_table, start_table     | reid/config, runs   |
| beyond: re-ranking                 | rerank_distances, Retrieval.rerank                             | reid/rerank.py      |
| beyond: activation maps            | activation_maps, show_activation_maps, activation_stats, ...   | reid/actmap.py      |
| test predictions                   | write_predictions, score_predictions, rank_gallery             | reid/predict.py     |
| the submission                     | record_predictions, submit_this_run                            | reid/submission.py  |
| figures                            | plot_history, show_gallery_grid, show_images, ...              | reid/plots.py       |
"""
from reid.actmap import (activation_maps, activation_stats, describe_activation_maps, maps_in_frame,  # noqa: F401
                         show_activation_maps)
from reid.answers import (answer_text, q1_lines, q2_lines, q3_lines, q4_lines, q5_lines, q6_lines,  # noqa: F401
                          q7_lines, q8_lines, q9_lines, q10_lines, q11_lines)
from reid.budget import (choose_epochs, default_epochs, default_input_size, images_per_epoch, plan_training,  # noqa: F401
                         ceiling_steps, samples_per_epoch, step_ceiling, steps_per_epoch, strong_input_size)
from reid.colab import Workspace, check_project, find_weights_once, gpu_check, weights_check  # noqa: F401
from reid.config import start_folder, start_of  # noqa: F401
from reid.findings import (compare_handout_models, describe_comparison, describe_ranked_rows,  # noqa: F401
                           colour_split, describe_row_facts, epoch_by_epoch, hubs, ranked_rows,
                           row_facts)
from reid.data import (IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, PERSON_SIZE, UNKNOWN_GT, DataError,  # noqa: F401
                       DataLayoutError, IDLossDataset, ImageCache, ImageDecodeError, RetrievalDataset,
                       TripletDataset, count_possible_triplets, load_image, person_transform, read_csv,
                       reid_transform, retrieval_loader)
from reid.device import machine_line, pick_device, resolve_precision, seed_everything  # noqa: F401
from reid.memory import GALLERY_FIGURE, planned_peak  # noqa: F401
from reid.evaluate import (MirroredSource, Retrieval, cmc_map, extract_features, pairwise_distance,  # noqa: F401
                           rank_k_accuracy, retrieve)
from reid.layout import DataInfo, check_layout, find_data_root, prepare_data  # noqa: F401
from reid.losses import HANDOUT_MARGIN, handout_triplet_loss, id_loss  # noqa: F401
from reid.model import (BNNeckNet, Bottleneck, ModifiedResNet18, ModifiedResNet50, ReIDNet,  # noqa: F401
                        ResBlock, WeightReport, build_model, count_parameters, holds_weights, load_imagenet_weights,
                        pooling_kernel, summary_table, table1_shapes, weight_mapping_report, weights_copy)
from reid.plots import (denormalize, plot_history, plot_ranked_results, show_before_after,  # noqa: F401
                        show_gallery_grid, show_images)
from reid.predict import (choose_pred_model, describe_test_scores, rank_gallery, score_predictions,  # noqa: F401
                          score_test, write_predictions)
from reid.report import (FLIP_LABEL, RERANK_LABEL, beyond_table, compare_models, describe_history,  # noqa: F401
                         describe_ranks, evaluate_retrieval, pick_examples, save_results, verdict)
from reid.rerank import rerank_distances  # noqa: F401
from reid.runs import ablation_table, start_table  # noqa: F401
from reid.submission import record_predictions, start_run, submit_this_run  # noqa: F401
from reid.text import wrap  # noqa: F401
from reid.train import History, TrainConfig, skipped_epoch_lines, train_model  # noqa: F401
