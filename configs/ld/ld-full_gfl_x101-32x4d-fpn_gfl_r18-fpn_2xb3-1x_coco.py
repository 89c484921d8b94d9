# LD full with the official R18 recipe (HikariTJU/LD configs/ld/ld_r18_gflv1_r101_fpn_coco_1x.py:
# samples_per_gpu=3 at lr 0.00375, L63 and L94, on 2 GPUs as its README says): start it with
# 2 GPUs (bash tools/dist_train.sh CONFIG 2). Main LD and VLR LD are sums over the anchors of each
# GPU's batch, so 3 images per GPU make them about 1.5x larger than the 8x2 default. Baseline:
# configs/detectors/gfl_r18-fpn_2xb3-1x_coco.py.
_base_ = './ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py'
train_dataloader = dict(batch_size=3)
optim_wrapper = dict(optimizer=dict(lr=0.00375))
auto_scale_lr = dict(base_batch_size=6)  # lr 0.00375 is for 6 images per step
