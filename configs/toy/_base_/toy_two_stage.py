# Two-stage detectors on Toy Shapes: 128x128 images hold at most 4 objects, so the RPN keeps 300
# proposals (COCO: 1000) and the RoI head samples 128 RoIs per image (COCO: 512). This is the
# image-size change for Faster R-CNN: the RoI head is most of its CPU time on small images.
toy_rpn_rcnn = dict(
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
