# gfl_r18-fpn_1x_coco.py with LD's official R18 batch and learning rate: 2 GPUs x 3 images,
# lr 0.00375 (= 0.01 x 6 / 16). The baseline of
# configs/ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_2xb3-1x_coco.py.
_base_ = './gfl_r18-fpn_1x_coco.py'
train_dataloader = dict(batch_size=3)
optim_wrapper = dict(optimizer=dict(lr=0.00375))
auto_scale_lr = dict(base_batch_size=6)  # lr 0.00375 is for 6 images per step
