-- Medical images (#18) are records of their own type; record_images holds what is read from
-- them (20261210110000_images.sql).
INSERT INTO record_types (id, name, description, aliases, position) VALUES
    ('medical-images', 'Medical Images', 'The images themselves: X-ray, MRI, CT, ultrasound, mammography, PET and others, as DICOM files or pictures.', 'medical image|medical images|dicom|dcm|image file|scan image|x-ray image|ct images|mri images|ultrasound image|mammogram image|pet images', 21);
